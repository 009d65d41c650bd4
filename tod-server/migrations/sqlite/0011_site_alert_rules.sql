-- Site and sector alert rules, evaluated every few minutes by whichever replica holds the
-- `site-alerts` lease. A sector rule goes with its sector; events keep the rule's id as history.
CREATE TABLE site_alert_rules (
    id              BLOB PRIMARY KEY NOT NULL,
    tenant_id       BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    site_id         BLOB NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    sector_id       BLOB REFERENCES sectors (id) ON DELETE CASCADE,
    rule_type       TEXT NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT,
    threshold_value REAL NOT NULL,
    threshold_unit  TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    fire_after      INTEGER NOT NULL,
    clear_after     INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX ix_site_alert_rules_site ON site_alert_rules (tenant_id, site_id);
CREATE INDEX ix_site_alert_rules_enabled ON site_alert_rules (enabled, tenant_id);

-- A link alert (signal degradation) names the link's access point; `device_id` is its client.
ALTER TABLE site_alert_events ADD COLUMN ap_device_id BLOB REFERENCES devices (id) ON DELETE SET NULL;
CREATE INDEX ix_site_alert_events_rule ON site_alert_events (rule_id, state);
