-- Hourly sums of each client's signal as its AP reported it, so a 7- or 30-day signal history
-- reads one row per hour instead of every registration. A background pass sums each hour once
-- it has closed (ten minutes after, for stragglers); `signal_rollup_state` says up to where. A
-- batch that brings registrations for an hour already summed (an agent backfilling after an
-- outage) marks that hour dirty: reads take it from the registrations until the next pass sums
-- it again. Same semantics as the history query: every non-null signal counts.
CREATE TABLE signal_hourly (
    tenant_id   BLOB NOT NULL,
    device_id   BLOB NOT NULL,
    mac         TEXT NOT NULL,
    hour        TEXT NOT NULL,
    signal_sum  BIGINT NOT NULL,
    samples     BIGINT NOT NULL,
    signal_min  SMALLINT NOT NULL,
    signal_max  SMALLINT NOT NULL,
    PRIMARY KEY (tenant_id, device_id, mac, hour)
);
CREATE INDEX ix_signal_hourly_hour ON signal_hourly (hour);
CREATE TABLE signal_hourly_dirty (
    tenant_id BLOB NOT NULL,
    hour      TEXT NOT NULL,
    -- Bumped by every batch that marks the hour again, so the pass that sums it removes the
    -- mark only if no batch came meanwhile.
    marks     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, hour)
);
CREATE TABLE signal_rollup_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    rolled_until TEXT NOT NULL
);
