-- Tenants: one ISP or customer organisation.
CREATE TABLE tenants (
    id          UUID PRIMARY KEY,
    name        VARCHAR(255) NOT NULL,
    description TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT uq_tenants_name UNIQUE (name),
    CONSTRAINT ck_tenants_name CHECK (length(btrim(name)) BETWEEN 1 AND 255)
);
