-- Tenants: one ISP or customer organisation.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT uq_tenants_name UNIQUE (name),
    CONSTRAINT ck_tenants_name CHECK (length(trim(name)) BETWEEN 1 AND 255)
);
