-- Site alert events. Raised by site rules and by the fleet itself: `agent_offline` is one event per
-- site whose agent went silent (not one per device), resolved when the agent reports again.
CREATE TABLE site_alert_events (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    site_id          UUID NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    sector_id        UUID,
    rule_id          UUID,
    device_id        UUID REFERENCES devices (id) ON DELETE SET NULL,
    link_id          UUID,
    kind             TEXT NOT NULL,
    severity         TEXT NOT NULL,
    message          TEXT NOT NULL,
    state            TEXT NOT NULL,
    consecutive_hits INTEGER NOT NULL DEFAULT 1,
    triggered_at     TIMESTAMPTZ NOT NULL,
    resolved_at      TIMESTAMPTZ,
    resolved_by      UUID,
    CONSTRAINT ck_site_alert_events_state CHECK (state IN ('active', 'resolved')),
    CONSTRAINT ck_site_alert_events_severity CHECK (severity IN ('info', 'warning', 'critical'))
);
CREATE INDEX ix_site_alert_events_site ON site_alert_events (tenant_id, site_id, triggered_at);
-- At most one active fleet event of a kind per site.
CREATE UNIQUE INDEX uq_site_alert_events_active_kind ON site_alert_events (site_id, kind)
    WHERE state = 'active' AND rule_id IS NULL;

GRANT SELECT, INSERT, UPDATE ON site_alert_events TO tod_app;
ALTER TABLE site_alert_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY site_alert_events_tenant_isolation ON site_alert_events TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
