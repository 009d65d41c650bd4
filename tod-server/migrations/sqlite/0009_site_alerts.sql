-- Site alert events. Raised by site rules and by the fleet itself: `agent_offline` is one event per
-- site whose agent went silent (not one per device), resolved when the agent reports again.
CREATE TABLE site_alert_events (
    id               BLOB PRIMARY KEY NOT NULL,
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    site_id          BLOB NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    sector_id        BLOB,
    rule_id          BLOB,
    device_id        BLOB REFERENCES devices (id) ON DELETE SET NULL,
    link_id          BLOB,
    kind             TEXT NOT NULL,
    severity         TEXT NOT NULL,
    message          TEXT NOT NULL,
    state            TEXT NOT NULL,
    consecutive_hits INTEGER NOT NULL DEFAULT 1,
    triggered_at     TEXT NOT NULL,
    resolved_at      TEXT,
    resolved_by      BLOB,
    CONSTRAINT ck_site_alert_events_state CHECK (state IN ('active', 'resolved')),
    CONSTRAINT ck_site_alert_events_severity CHECK (severity IN ('info', 'warning', 'critical'))
);
CREATE INDEX ix_site_alert_events_site ON site_alert_events (tenant_id, site_id, triggered_at);
-- At most one active fleet event of a kind per site.
CREATE UNIQUE INDEX uq_site_alert_events_active_kind ON site_alert_events (site_id, kind)
    WHERE state = 'active' AND rule_id IS NULL;

