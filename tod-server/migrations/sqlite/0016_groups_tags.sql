-- Device groups (logical sets that alert rules can target) and device tags (free labels), each
-- with its members; a device alert rule may cover one group.
CREATE TABLE device_groups (
    id          BLOB PRIMARY KEY NOT NULL,
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT,
    color       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT uq_device_groups_tenant_name UNIQUE (tenant_id, name),
    CONSTRAINT ck_device_groups_name CHECK (length(trim(name)) BETWEEN 1 AND 255)
);
CREATE TABLE device_group_members (
    set_id    BLOB NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
    device_id BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tenant_id BLOB NOT NULL,
    PRIMARY KEY (set_id, device_id)
);
CREATE INDEX ix_device_group_members_device ON device_group_members (tenant_id, device_id);

CREATE TABLE device_tags (
    id          BLOB PRIMARY KEY NOT NULL,
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT,
    color       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CONSTRAINT uq_device_tags_tenant_name UNIQUE (tenant_id, name),
    CONSTRAINT ck_device_tags_name CHECK (length(trim(name)) BETWEEN 1 AND 255)
);
CREATE TABLE device_tag_members (
    set_id    BLOB NOT NULL REFERENCES device_tags (id) ON DELETE CASCADE,
    device_id BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tenant_id BLOB NOT NULL,
    PRIMARY KEY (set_id, device_id)
);
CREATE INDEX ix_device_tag_members_device ON device_tag_members (tenant_id, device_id);

ALTER TABLE alert_rules ADD COLUMN group_id BLOB REFERENCES device_groups (id) ON DELETE CASCADE;
