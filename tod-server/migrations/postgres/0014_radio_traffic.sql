-- Per report: one row per radio (RF monitor and registration-table summary) and one per
-- interface with the bytes it moved since the previous report. They feed the rf-stats and
-- wireless-issues reads and the metrics series, and age out with the other history.
CREATE TABLE radio_stats (
    tenant_id          UUID NOT NULL,
    device_id          UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    collected_at       TIMESTAMPTZ NOT NULL,
    interface          TEXT NOT NULL,
    role               TEXT,
    noise_floor_dbm    SMALLINT,
    frequency_mhz      INTEGER,
    channel_width_mhz  INTEGER,
    tx_power_dbm       SMALLINT,
    registered_clients INTEGER,
    clients            INTEGER NOT NULL,
    signal_avg_dbm     DOUBLE PRECISION,
    signal_min_dbm     SMALLINT,
    ccq_avg            DOUBLE PRECISION,
    CONSTRAINT ck_radio_stats_role CHECK (role IS NULL OR role IN ('access_point', 'station'))
);
CREATE INDEX ix_radio_stats_device ON radio_stats (tenant_id, device_id, interface, collected_at);
CREATE INDEX ix_radio_stats_time ON radio_stats (tenant_id, collected_at);

CREATE TABLE interface_traffic (
    tenant_id    UUID NOT NULL,
    device_id    UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    collected_at TIMESTAMPTZ NOT NULL,
    interface    TEXT NOT NULL,
    rx_bytes     BIGINT NOT NULL,
    tx_bytes     BIGINT NOT NULL
);
CREATE INDEX ix_interface_traffic_device ON interface_traffic (tenant_id, device_id, collected_at);

GRANT SELECT, INSERT, DELETE ON radio_stats, interface_traffic TO tod_app;
ALTER TABLE radio_stats ENABLE ROW LEVEL SECURITY;
CREATE POLICY radio_stats_tenant_isolation ON radio_stats TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE interface_traffic ENABLE ROW LEVEL SECURITY;
CREATE POLICY interface_traffic_tenant_isolation ON interface_traffic TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
