-- Sites (towers, POPs), owned by a tenant.
CREATE TABLE sites (
    id          BLOB PRIMARY KEY NOT NULL,
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    latitude    REAL,
    longitude   REAL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT uq_sites_tenant_name UNIQUE (tenant_id, name),
    CONSTRAINT ck_sites_name CHECK (length(trim(name)) BETWEEN 1 AND 255),
    CONSTRAINT ck_sites_coordinates CHECK (
        (latitude IS NULL OR latitude BETWEEN -90 AND 90) AND (longitude IS NULL OR longitude BETWEEN -180 AND 180))
);
CREATE INDEX ix_sites_tenant ON sites (tenant_id);
