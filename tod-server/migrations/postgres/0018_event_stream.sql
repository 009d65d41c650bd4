-- The live event stream (SSE) as an outbox: each change that an operator watches live (device
-- status, reboots, versions, link states, alerts) is appended in the same transaction as the
-- change, numbered per tenant. The per-tenant head row is taken last in the transaction, so
-- numbers follow commit order and a reader resuming after number N misses nothing.
CREATE TABLE event_stream_heads (
    tenant_id UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL
);

CREATE TABLE event_stream (
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    data        TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX ix_event_stream_recorded ON event_stream (recorded_at);

-- How far the NATS relay has published each tenant's stream (when TOD_NATS_URL is set).
CREATE TABLE event_relay_cursors (
    tenant_id UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL
);

GRANT SELECT, INSERT, UPDATE, DELETE ON event_stream_heads, event_stream TO tod_app;
ALTER TABLE event_stream_heads ENABLE ROW LEVEL SECURITY;
CREATE POLICY event_stream_heads_tenant_isolation ON event_stream_heads TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE event_stream ENABLE ROW LEVEL SECURITY;
CREATE POLICY event_stream_tenant_isolation ON event_stream TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
