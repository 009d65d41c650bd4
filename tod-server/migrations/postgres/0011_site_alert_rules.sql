-- Site and sector alert rules, evaluated every few minutes by whichever replica holds the
-- `site-alerts` lease. A sector rule goes with its sector; events keep the rule's id as history.
CREATE TABLE site_alert_rules (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    site_id         UUID NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    sector_id       UUID REFERENCES sectors (id) ON DELETE CASCADE,
    rule_type       TEXT NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT,
    threshold_value DOUBLE PRECISION NOT NULL,
    threshold_unit  TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    fire_after      INTEGER NOT NULL,
    clear_after     INTEGER NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX ix_site_alert_rules_site ON site_alert_rules (tenant_id, site_id);
CREATE INDEX ix_site_alert_rules_enabled ON site_alert_rules (enabled, tenant_id);

-- A link alert (signal degradation) names the link's access point; `device_id` is its client.
ALTER TABLE site_alert_events ADD COLUMN ap_device_id UUID REFERENCES devices (id) ON DELETE SET NULL;
CREATE INDEX ix_site_alert_events_rule ON site_alert_events (rule_id, state);

GRANT SELECT, INSERT, UPDATE, DELETE ON site_alert_rules TO tod_app;
ALTER TABLE site_alert_rules ENABLE ROW LEVEL SECURITY;
CREATE POLICY site_alert_rules_tenant_isolation ON site_alert_rules TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
