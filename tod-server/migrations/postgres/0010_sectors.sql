-- Sectors: the radio sectors of a site (an azimuth and the APs pointing that way). A device's
-- sector must be at the device's own site (the server checks it; the original did not).
CREATE TABLE sectors (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    site_id     UUID NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    azimuth     DOUBLE PRECISION,
    description TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT uq_sectors_site_name UNIQUE (site_id, name),
    CONSTRAINT ck_sectors_azimuth CHECK (azimuth IS NULL OR (azimuth >= 0 AND azimuth <= 360))
);
CREATE INDEX ix_sectors_tenant_site ON sectors (tenant_id, site_id);
ALTER TABLE devices ADD COLUMN sector_id UUID REFERENCES sectors (id) ON DELETE SET NULL;
CREATE INDEX ix_devices_sector ON devices (sector_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON sectors TO tod_app;
ALTER TABLE sectors ENABLE ROW LEVEL SECURITY;
CREATE POLICY sectors_tenant_isolation ON sectors TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
