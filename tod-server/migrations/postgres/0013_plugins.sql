-- WASM alert plugins, per tenant. The component is kept as uploaded (validated by compiling it);
-- `disabled_reason` says why the host stopped a plugin (a trap, a limit) until an operator
-- re-enables it. An assignment runs the plugin over the whole tenant, one site or one sector;
-- its events are site alert events whose `rule_id` is the assignment's id.
CREATE TABLE plugins (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    version         TEXT NOT NULL,
    inputs          TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    size_bytes      BIGINT NOT NULL,
    component       BYTEA NOT NULL,
    config          TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    disabled_reason TEXT,
    fire_after      INTEGER NOT NULL,
    clear_after     INTEGER NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX ix_plugins_tenant ON plugins (tenant_id, created_at);

CREATE TABLE plugin_assignments (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plugin_id  UUID NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
    site_id    UUID REFERENCES sites (id) ON DELETE CASCADE,
    sector_id  UUID REFERENCES sectors (id) ON DELETE CASCADE,
    config     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX ix_plugin_assignments_plugin ON plugin_assignments (tenant_id, plugin_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON plugins TO tod_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON plugin_assignments TO tod_app;
ALTER TABLE plugins ENABLE ROW LEVEL SECURITY;
CREATE POLICY plugins_tenant_isolation ON plugins TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE plugin_assignments ENABLE ROW LEVEL SECURITY;
CREATE POLICY plugin_assignments_tenant_isolation ON plugin_assignments TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
