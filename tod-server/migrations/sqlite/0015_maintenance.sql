-- Maintenance windows: while one is in effect, alerts for what it covers (devices, sites, or the
-- whole tenant when both lists are empty) do not fire; each alert held back is recorded once per
-- window in suppressed_alerts, so nothing is lost. A window may repeat daily or weekly.
CREATE TABLE maintenance_windows (
    id              BLOB PRIMARY KEY NOT NULL,
    tenant_id       BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    device_ids      TEXT NOT NULL DEFAULT '[]',
    site_ids        TEXT NOT NULL DEFAULT '[]',
    start_at        TEXT NOT NULL,
    end_at          TEXT NOT NULL,
    recurrence      TEXT,
    suppress_alerts INTEGER NOT NULL DEFAULT 1,
    notes           TEXT,
    created_by      BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CONSTRAINT ck_maintenance_windows_name CHECK (length(trim(name)) BETWEEN 1 AND 200),
    CONSTRAINT ck_maintenance_windows_range CHECK (end_at > start_at),
    CONSTRAINT ck_maintenance_windows_recurrence CHECK (recurrence IS NULL OR recurrence IN ('daily', 'weekly'))
);
CREATE INDEX ix_maintenance_windows_tenant ON maintenance_windows (tenant_id, start_at, end_at);

CREATE TABLE suppressed_alerts (
    id          BLOB PRIMARY KEY NOT NULL,
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    window_id   BLOB NOT NULL REFERENCES maintenance_windows (id) ON DELETE CASCADE,
    rule_id     BLOB,
    device_id   BLOB REFERENCES devices (id) ON DELETE CASCADE,
    site_id     BLOB REFERENCES sites (id) ON DELETE CASCADE,
    source      TEXT NOT NULL,
    severity    TEXT NOT NULL,
    message     TEXT NOT NULL,
    at          TEXT NOT NULL,
    CONSTRAINT ck_suppressed_alerts_source CHECK (source IN ('device_rule', 'site_rule', 'plugin', 'fleet')),
    CONSTRAINT ck_suppressed_alerts_severity CHECK (severity IN ('info', 'warning', 'critical'))
);
CREATE INDEX ix_suppressed_alerts_window ON suppressed_alerts (tenant_id, window_id, at);
