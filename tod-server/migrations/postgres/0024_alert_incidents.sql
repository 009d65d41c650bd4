-- Incidents: device alerts of one rule at one site that fire together (within 30 of the
-- devices' poll intervals of an open one) share an incident, so a tower-wide cause — a mass
-- reboot, rain over its sectors — is one incident to notify, not one per device. Alerts raised
-- before this change are each their own incident.
ALTER TABLE alert_events ADD COLUMN incident_id UUID;
UPDATE alert_events SET incident_id = id;
CREATE INDEX ix_alert_events_rule_fired ON alert_events (tenant_id, rule_id, fired_at);
