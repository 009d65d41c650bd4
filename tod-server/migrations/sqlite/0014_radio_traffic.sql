-- Per report: one row per radio (RF monitor and registration-table summary) and one per
-- interface with the bytes it moved since the previous report. They feed the rf-stats and
-- wireless-issues reads and the metrics series, and age out with the other history.
CREATE TABLE radio_stats (
    tenant_id          BLOB NOT NULL,
    device_id          BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    collected_at       TEXT NOT NULL,
    interface          TEXT NOT NULL,
    role               TEXT,
    noise_floor_dbm    INTEGER,
    frequency_mhz      INTEGER,
    channel_width_mhz  INTEGER,
    tx_power_dbm       INTEGER,
    registered_clients INTEGER,
    clients            INTEGER NOT NULL,
    signal_avg_dbm     REAL,
    signal_min_dbm     INTEGER,
    ccq_avg            REAL,
    CONSTRAINT ck_radio_stats_role CHECK (role IS NULL OR role IN ('access_point', 'station'))
);
CREATE INDEX ix_radio_stats_device ON radio_stats (tenant_id, device_id, interface, collected_at);
CREATE INDEX ix_radio_stats_time ON radio_stats (tenant_id, collected_at);

CREATE TABLE interface_traffic (
    tenant_id    BLOB NOT NULL,
    device_id    BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    collected_at TEXT NOT NULL,
    interface    TEXT NOT NULL,
    rx_bytes     INTEGER NOT NULL,
    tx_bytes     INTEGER NOT NULL
);
CREATE INDEX ix_interface_traffic_device ON interface_traffic (tenant_id, device_id, collected_at);
