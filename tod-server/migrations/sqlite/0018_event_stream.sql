-- The live event stream (SSE) as an outbox: each change that an operator watches live (device
-- status, reboots, versions, link states, alerts) is appended in the same transaction as the
-- change, numbered per tenant. The per-tenant head row is taken last in the transaction, so
-- numbers follow commit order and a reader resuming after number N misses nothing.
CREATE TABLE event_stream_heads (
    tenant_id BLOB PRIMARY KEY NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL
);

CREATE TABLE event_stream (
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    data        TEXT NOT NULL,
    at          TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX ix_event_stream_recorded ON event_stream (recorded_at);

-- How far the NATS relay has published each tenant's stream (when TOD_NATS_URL is set).
CREATE TABLE event_relay_cursors (
    tenant_id BLOB PRIMARY KEY NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL
);
