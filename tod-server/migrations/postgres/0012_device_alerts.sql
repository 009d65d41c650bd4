-- Device alert rules (threshold rules on the metrics of every report), the alerts they raise,
-- and the hysteresis/flapping state per device, kept so any replica can evaluate the next report.
CREATE TABLE alert_rules (
    id             UUID PRIMARY KEY,
    tenant_id      UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id      UUID REFERENCES devices (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    metric         TEXT NOT NULL,
    operator       TEXT NOT NULL,
    threshold      DOUBLE PRECISION NOT NULL,
    duration_polls INTEGER NOT NULL,
    severity       TEXT NOT NULL,
    enabled        BOOLEAN NOT NULL,
    is_default     BOOLEAN NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    CONSTRAINT ck_alert_rules_severity CHECK (severity IN ('info', 'warning', 'critical'))
);
CREATE INDEX ix_alert_rules_tenant ON alert_rules (tenant_id, enabled);

-- One row per alert from fire to resolve (flapping is a state of the row, not more rows).
CREATE TABLE alert_events (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    rule_id         UUID,
    device_id       UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    status          TEXT NOT NULL,
    severity        TEXT NOT NULL,
    metric          TEXT,
    value           DOUBLE PRECISION,
    threshold       DOUBLE PRECISION,
    message         TEXT NOT NULL,
    acknowledged_at TIMESTAMPTZ,
    acknowledged_by UUID,
    silenced_until  TIMESTAMPTZ,
    fired_at        TIMESTAMPTZ NOT NULL,
    resolved_at     TIMESTAMPTZ,
    resolve_reason  TEXT,
    CONSTRAINT ck_alert_events_status CHECK (status IN ('firing', 'flapping', 'resolved')),
    CONSTRAINT ck_alert_events_severity CHECK (severity IN ('info', 'warning', 'critical'))
);
CREATE INDEX ix_alert_events_tenant ON alert_events (tenant_id, fired_at);
CREATE UNIQUE INDEX uq_alert_events_open ON alert_events (device_id, rule_id) WHERE resolved_at IS NULL;

CREATE TABLE alert_state (
    device_id  UUID PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    tenant_id  UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    tracks     TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Every tenant starts with the default rules (new tenants get them at creation).
INSERT INTO alert_rules (id, tenant_id, device_id, name, metric, operator, threshold, duration_polls, severity,
                         enabled, is_default, created_at, updated_at)
SELECT gen_random_uuid(), t.id, NULL, d.name, d.metric, d.operator, d.threshold, d.duration_polls, d.severity,
       TRUE, TRUE, now(), now()
FROM tenants t CROSS JOIN (VALUES
    ('High CPU Usage', 'cpu_load', 'gt', 90.0, 5, 'warning'),
    ('High Memory Usage', 'memory_used_pct', 'gt', 90.0, 5, 'warning'),
    ('High Disk Usage', 'disk_used_pct', 'gt', 85.0, 3, 'warning'),
    ('Device Offline', 'device_offline', 'eq', 1.0, 2, 'critical'),
    ('Wireless Signal Degraded', 'signal_strength', 'lt', -75.0, 3, 'warning'),
    ('Wireless CCQ Low', 'ccq', 'lt', 50.0, 3, 'warning')
) AS d (name, metric, operator, threshold, duration_polls, severity);

GRANT SELECT, INSERT, UPDATE, DELETE ON alert_rules, alert_state TO tod_app;
GRANT SELECT, INSERT, UPDATE ON alert_events TO tod_app;
ALTER TABLE alert_rules ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY alert_rules_tenant_isolation ON alert_rules TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
CREATE POLICY alert_events_tenant_isolation ON alert_events TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
CREATE POLICY alert_state_tenant_isolation ON alert_state TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
