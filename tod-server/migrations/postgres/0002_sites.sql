-- Sites (towers, POPs), owned by a tenant.
CREATE TABLE sites (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        VARCHAR(255) NOT NULL,
    latitude    DOUBLE PRECISION,
    longitude   DOUBLE PRECISION,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT uq_sites_tenant_name UNIQUE (tenant_id, name),
    CONSTRAINT ck_sites_name CHECK (length(btrim(name)) BETWEEN 1 AND 255),
    CONSTRAINT ck_sites_coordinates CHECK (
        (latitude IS NULL OR latitude BETWEEN -90 AND 90) AND (longitude IS NULL OR longitude BETWEEN -180 AND 180))
);
CREATE INDEX ix_sites_tenant ON sites (tenant_id);

-- Tenant isolation by Row-Level Security. Tenant-scoped work runs as the non-superuser role
-- tod_app (SET LOCAL ROLE) with the tenant in the transaction-local setting tod.tenant_id; the
-- policy then hides and refuses every other tenant's rows, even for a query that forgot its
-- tenant filter. Roles are cluster-wide: create it once, tolerating a concurrent creation.
DO $$
BEGIN
    CREATE ROLE tod_app NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

GRANT SELECT ON tenants TO tod_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON sites TO tod_app;

ALTER TABLE sites ENABLE ROW LEVEL SECURITY;
ALTER TABLE sites FORCE ROW LEVEL SECURITY;
CREATE POLICY sites_tenant_isolation ON sites
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
