-- Devices, the agents that poll them, and what the agents deliver.
CREATE TABLE devices (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    site_id          UUID REFERENCES sites (id) ON DELETE SET NULL,
    name             TEXT NOT NULL,
    host             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'unknown',
    routeros_version TEXT,
    board_name       TEXT,
    last_seen_at     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT uq_devices_tenant_name UNIQUE (tenant_id, name),
    CONSTRAINT ck_devices_name CHECK (length(btrim(name)) BETWEEN 1 AND 255),
    CONSTRAINT ck_devices_host CHECK (length(btrim(host)) BETWEEN 1 AND 255),
    CONSTRAINT ck_devices_status CHECK (status IN ('unknown', 'online', 'offline', 'unreachable', 'auth_failed'))
);
CREATE INDEX ix_devices_tenant_site ON devices (tenant_id, site_id);

-- One agent per tower: bound to a tenant and a site, authenticated by a token shown once.
CREATE TABLE agents (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    site_id      UUID NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL,
    last_seen_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    CONSTRAINT uq_agents_token UNIQUE (token_hash),
    CONSTRAINT uq_agents_tenant_name UNIQUE (tenant_id, name),
    CONSTRAINT ck_agents_name CHECK (length(btrim(name)) BETWEEN 1 AND 255)
);

-- Batches already committed, by idempotency key: a redelivery is acknowledged, not stored again.
CREATE TABLE ingest_batches (
    agent_id        UUID NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    tenant_id       UUID NOT NULL,
    reports         BIGINT NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (agent_id, idempotency_key)
);

-- Registration-table rows as the APs reported them, MACs canonical (lower-case).
CREATE TABLE registrations (
    tenant_id     UUID NOT NULL,
    device_id     UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    collected_at  TIMESTAMPTZ NOT NULL,
    interface     TEXT NOT NULL,
    mac           TEXT NOT NULL,
    signal_dbm    SMALLINT,
    tx_signal_dbm SMALLINT,
    tx_ccq        SMALLINT,
    tx_rate       TEXT,
    rx_rate       TEXT,
    uptime_secs   BIGINT,
    distance_m    BIGINT,
    last_ip       TEXT
);
CREATE INDEX ix_registrations_device ON registrations (tenant_id, device_id, collected_at);
CREATE INDEX ix_registrations_mac ON registrations (tenant_id, mac, collected_at);

-- Health samples.
CREATE TABLE device_metrics (
    tenant_id     UUID NOT NULL,
    device_id     UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    collected_at  TIMESTAMPTZ NOT NULL,
    status        TEXT NOT NULL,
    cpu_load      DOUBLE PRECISION,
    free_memory   BIGINT,
    total_memory  BIGINT,
    temperature_c DOUBLE PRECISION,
    uptime_secs   BIGINT
);
CREATE INDEX ix_device_metrics_device ON device_metrics (tenant_id, device_id, collected_at);

-- Row-Level Security for tenant-scoped work (see 0002).
GRANT SELECT, INSERT, UPDATE, DELETE ON devices TO tod_app;
GRANT SELECT, INSERT, UPDATE ON agents TO tod_app;
GRANT SELECT, INSERT ON ingest_batches, registrations, device_metrics TO tod_app;
ALTER TABLE devices ENABLE ROW LEVEL SECURITY;
CREATE POLICY devices_tenant_isolation ON devices TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE agents ENABLE ROW LEVEL SECURITY;
CREATE POLICY agents_tenant_isolation ON agents TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE ingest_batches ENABLE ROW LEVEL SECURITY;
CREATE POLICY ingest_batches_tenant_isolation ON ingest_batches TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE registrations ENABLE ROW LEVEL SECURITY;
CREATE POLICY registrations_tenant_isolation ON registrations TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE device_metrics ENABLE ROW LEVEL SECURITY;
CREATE POLICY device_metrics_tenant_isolation ON device_metrics TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
