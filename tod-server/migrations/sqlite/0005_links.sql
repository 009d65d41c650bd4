-- Interfaces as last reported (their MACs resolve registration-table clients to devices), the
-- wireless links discovered from registration tables, when each AP last reported, and the log
-- of link state changes.
CREATE TABLE device_interfaces (
    tenant_id  BLOB NOT NULL,
    device_id  BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    mac        TEXT,
    kind       TEXT NOT NULL,
    running    INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (device_id, name)
);
CREATE INDEX ix_device_interfaces_mac ON device_interfaces (tenant_id, mac);

CREATE TABLE wireless_links (
    tenant_id     BLOB NOT NULL,
    ap_device_id  BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    cpe_device_id BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    interface     TEXT NOT NULL,
    client_mac    TEXT NOT NULL,
    signal_dbm    INTEGER,
    tx_ccq        INTEGER,
    tx_rate       TEXT,
    rx_rate       TEXT,
    state         TEXT NOT NULL,
    missed_polls  INTEGER NOT NULL,
    discovered_at TEXT NOT NULL,
    last_seen     TEXT NOT NULL,
    state_since   TEXT NOT NULL,
    PRIMARY KEY (ap_device_id, cpe_device_id),
    CONSTRAINT ck_wireless_links_state CHECK (state IN ('discovered', 'active', 'degraded', 'down', 'stale'))
);
CREATE INDEX ix_wireless_links_tenant ON wireless_links (tenant_id, state);
CREATE INDEX ix_wireless_links_cpe ON wireless_links (tenant_id, cpe_device_id);

CREATE TABLE link_aps (
    tenant_id      BLOB NOT NULL,
    ap_device_id   BLOB PRIMARY KEY NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    last_report_at TEXT NOT NULL
);

CREATE TABLE link_events (
    tenant_id     BLOB NOT NULL,
    ap_device_id  BLOB NOT NULL,
    cpe_device_id BLOB NOT NULL,
    from_state    TEXT,
    to_state      TEXT NOT NULL,
    at            TEXT NOT NULL
);
CREATE INDEX ix_link_events_tenant ON link_events (tenant_id, at);
