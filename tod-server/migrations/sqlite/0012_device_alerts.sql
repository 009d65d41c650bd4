-- Device alert rules (threshold rules on the metrics of every report), the alerts they raise,
-- and the hysteresis/flapping state per device, kept so any replica can evaluate the next report.
CREATE TABLE alert_rules (
    id             BLOB PRIMARY KEY NOT NULL,
    tenant_id      BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id      BLOB REFERENCES devices (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    metric         TEXT NOT NULL,
    operator       TEXT NOT NULL,
    threshold      REAL NOT NULL,
    duration_polls INTEGER NOT NULL,
    severity       TEXT NOT NULL,
    enabled        INTEGER NOT NULL,
    is_default     INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    CONSTRAINT ck_alert_rules_severity CHECK (severity IN ('info', 'warning', 'critical'))
);
CREATE INDEX ix_alert_rules_tenant ON alert_rules (tenant_id, enabled);

-- One row per alert from fire to resolve (flapping is a state of the row, not more rows).
CREATE TABLE alert_events (
    id              BLOB PRIMARY KEY NOT NULL,
    tenant_id       BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    rule_id         BLOB,
    device_id       BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    status          TEXT NOT NULL,
    severity        TEXT NOT NULL,
    metric          TEXT,
    value           REAL,
    threshold       REAL,
    message         TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by BLOB,
    silenced_until  TEXT,
    fired_at        TEXT NOT NULL,
    resolved_at     TEXT,
    resolve_reason  TEXT,
    CONSTRAINT ck_alert_events_status CHECK (status IN ('firing', 'flapping', 'resolved')),
    CONSTRAINT ck_alert_events_severity CHECK (severity IN ('info', 'warning', 'critical'))
);
CREATE INDEX ix_alert_events_tenant ON alert_events (tenant_id, fired_at);
CREATE UNIQUE INDEX uq_alert_events_open ON alert_events (device_id, rule_id) WHERE resolved_at IS NULL;

CREATE TABLE alert_state (
    device_id  BLOB PRIMARY KEY NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    tracks     TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Every tenant starts with the default rules (new tenants get them at creation).
WITH d (name, metric, operator, threshold, duration_polls, severity) AS (VALUES
    ('High CPU Usage', 'cpu_load', 'gt', 90.0, 5, 'warning'),
    ('High Memory Usage', 'memory_used_pct', 'gt', 90.0, 5, 'warning'),
    ('High Disk Usage', 'disk_used_pct', 'gt', 85.0, 3, 'warning'),
    ('Device Offline', 'device_offline', 'eq', 1.0, 2, 'critical'),
    ('Wireless Signal Degraded', 'signal_strength', 'lt', -75.0, 3, 'warning'),
    ('Wireless CCQ Low', 'ccq', 'lt', 50.0, 3, 'warning')
)
INSERT INTO alert_rules (id, tenant_id, device_id, name, metric, operator, threshold, duration_polls, severity,
                         enabled, is_default, created_at, updated_at)
SELECT randomblob(16), t.id, NULL, d.name, d.metric, d.operator, d.threshold, d.duration_polls, d.severity,
       1, 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
FROM tenants t CROSS JOIN d;
