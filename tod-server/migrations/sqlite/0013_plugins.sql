-- WASM alert plugins, per tenant. The component is kept as uploaded (validated by compiling it);
-- `disabled_reason` says why the host stopped a plugin (a trap, a limit) until an operator
-- re-enables it. An assignment runs the plugin over the whole tenant, one site or one sector;
-- its events are site alert events whose `rule_id` is the assignment's id.
CREATE TABLE plugins (
    id              BLOB PRIMARY KEY NOT NULL,
    tenant_id       BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    version         TEXT NOT NULL,
    inputs          TEXT NOT NULL,
    sha256          TEXT NOT NULL,
    size_bytes      INTEGER NOT NULL,
    component       BLOB NOT NULL,
    config          TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    disabled_reason TEXT,
    fire_after      INTEGER NOT NULL,
    clear_after     INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX ix_plugins_tenant ON plugins (tenant_id, created_at);

CREATE TABLE plugin_assignments (
    id         BLOB PRIMARY KEY NOT NULL,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    plugin_id  BLOB NOT NULL REFERENCES plugins (id) ON DELETE CASCADE,
    site_id    BLOB REFERENCES sites (id) ON DELETE CASCADE,
    sector_id  BLOB REFERENCES sectors (id) ON DELETE CASCADE,
    config     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX ix_plugin_assignments_plugin ON plugin_assignments (tenant_id, plugin_id);
