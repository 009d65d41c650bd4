-- Interfaces as last reported (their MACs resolve registration-table clients to devices), the
-- wireless links discovered from registration tables, when each AP last reported, and the log
-- of link state changes.
CREATE TABLE device_interfaces (
    tenant_id  UUID NOT NULL,
    device_id  UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    mac        TEXT,
    kind       TEXT NOT NULL,
    running    BOOLEAN NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (device_id, name)
);
CREATE INDEX ix_device_interfaces_mac ON device_interfaces (tenant_id, mac);

CREATE TABLE wireless_links (
    tenant_id     UUID NOT NULL,
    ap_device_id  UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    cpe_device_id UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    interface     TEXT NOT NULL,
    client_mac    TEXT NOT NULL,
    signal_dbm    SMALLINT,
    tx_ccq        SMALLINT,
    tx_rate       TEXT,
    rx_rate       TEXT,
    state         TEXT NOT NULL,
    missed_polls  BIGINT NOT NULL,
    discovered_at TIMESTAMPTZ NOT NULL,
    last_seen     TIMESTAMPTZ NOT NULL,
    state_since   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (ap_device_id, cpe_device_id),
    CONSTRAINT ck_wireless_links_state CHECK (state IN ('discovered', 'active', 'degraded', 'down', 'stale'))
);
CREATE INDEX ix_wireless_links_tenant ON wireless_links (tenant_id, state);
CREATE INDEX ix_wireless_links_cpe ON wireless_links (tenant_id, cpe_device_id);

CREATE TABLE link_aps (
    tenant_id      UUID NOT NULL,
    ap_device_id   UUID PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    last_report_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE link_events (
    tenant_id     UUID NOT NULL,
    ap_device_id  UUID NOT NULL,
    cpe_device_id UUID NOT NULL,
    from_state    TEXT,
    to_state      TEXT NOT NULL,
    at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX ix_link_events_tenant ON link_events (tenant_id, at);

GRANT SELECT, INSERT, UPDATE, DELETE ON device_interfaces, wireless_links, link_aps TO tod_app;
GRANT SELECT, INSERT ON link_events TO tod_app;
ALTER TABLE device_interfaces ENABLE ROW LEVEL SECURITY;
CREATE POLICY device_interfaces_tenant_isolation ON device_interfaces TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE wireless_links ENABLE ROW LEVEL SECURITY;
CREATE POLICY wireless_links_tenant_isolation ON wireless_links TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE link_aps ENABLE ROW LEVEL SECURITY;
CREATE POLICY link_aps_tenant_isolation ON link_aps TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE link_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY link_events_tenant_isolation ON link_events TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
