-- Devices, the agents that poll them, and what the agents deliver.
CREATE TABLE devices (
    id               BLOB PRIMARY KEY NOT NULL,
    tenant_id        BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    site_id          BLOB REFERENCES sites (id) ON DELETE SET NULL,
    name             TEXT NOT NULL,
    host             TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'unknown',
    routeros_version TEXT,
    board_name       TEXT,
    last_seen_at     TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    CONSTRAINT uq_devices_tenant_name UNIQUE (tenant_id, name),
    CONSTRAINT ck_devices_name CHECK (length(trim(name)) BETWEEN 1 AND 255),
    CONSTRAINT ck_devices_host CHECK (length(trim(host)) BETWEEN 1 AND 255),
    CONSTRAINT ck_devices_status CHECK (status IN ('unknown', 'online', 'offline', 'unreachable', 'auth_failed'))
);
CREATE INDEX ix_devices_tenant_site ON devices (tenant_id, site_id);

-- One agent per tower: bound to a tenant and a site, authenticated by a token shown once.
CREATE TABLE agents (
    id           BLOB PRIMARY KEY NOT NULL,
    tenant_id    BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    site_id      BLOB NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL,
    last_seen_at TEXT,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT,
    CONSTRAINT uq_agents_token UNIQUE (token_hash),
    CONSTRAINT uq_agents_tenant_name UNIQUE (tenant_id, name),
    CONSTRAINT ck_agents_name CHECK (length(trim(name)) BETWEEN 1 AND 255)
);

-- Batches already committed, by idempotency key: a redelivery is acknowledged, not stored again.
CREATE TABLE ingest_batches (
    agent_id        BLOB NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL,
    tenant_id       BLOB NOT NULL,
    reports         INTEGER NOT NULL,
    received_at     TEXT NOT NULL,
    PRIMARY KEY (agent_id, idempotency_key)
);

-- Registration-table rows as the APs reported them, MACs canonical (lower-case).
CREATE TABLE registrations (
    tenant_id     BLOB NOT NULL,
    device_id     BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    collected_at  TEXT NOT NULL,
    interface     TEXT NOT NULL,
    mac           TEXT NOT NULL,
    signal_dbm    INTEGER,
    tx_signal_dbm INTEGER,
    tx_ccq        INTEGER,
    tx_rate       TEXT,
    rx_rate       TEXT,
    uptime_secs   INTEGER,
    distance_m    INTEGER,
    last_ip       TEXT
);
CREATE INDEX ix_registrations_device ON registrations (tenant_id, device_id, collected_at);
CREATE INDEX ix_registrations_mac ON registrations (tenant_id, mac, collected_at);

-- Health samples.
CREATE TABLE device_metrics (
    tenant_id     BLOB NOT NULL,
    device_id     BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    collected_at  TEXT NOT NULL,
    status        TEXT NOT NULL,
    cpu_load      REAL,
    free_memory   INTEGER,
    total_memory  INTEGER,
    temperature_c REAL,
    uptime_secs   INTEGER
);
CREATE INDEX ix_device_metrics_device ON device_metrics (tenant_id, device_id, collected_at);
