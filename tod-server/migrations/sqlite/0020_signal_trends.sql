-- The hourly trend detector raises one site alert event per link whose signal fell week over
-- week (kind 'signal_trend', no rule, the CPE in device_id and the AP in ap_device_id). The
-- one-active-event-per-kind-and-site index of fleet events no longer covers them; they have their
-- own: one active trend event per link.
DROP INDEX uq_site_alert_events_active_kind;
CREATE UNIQUE INDEX uq_site_alert_events_active_kind ON site_alert_events (site_id, kind)
    WHERE state = 'active' AND rule_id IS NULL AND kind <> 'signal_trend';
CREATE UNIQUE INDEX uq_site_alert_events_active_trend ON site_alert_events (ap_device_id, device_id)
    WHERE state = 'active' AND rule_id IS NULL AND kind = 'signal_trend';
