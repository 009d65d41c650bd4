-- Tenants: one ISP or customer organisation. Ids are UUIDs stored as 16-byte BLOBs, times as
-- sqlx's UTC text, so one set of queries serves SQLite and PostgreSQL.
CREATE TABLE tenants (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT uq_tenants_name UNIQUE (name),
    CONSTRAINT ck_tenants_name CHECK (length(trim(name)) BETWEEN 1 AND 255)
);
