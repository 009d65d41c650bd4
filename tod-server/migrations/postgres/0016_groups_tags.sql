-- Device groups (logical sets that alert rules can target) and device tags (free labels), each
-- with its members; a device alert rule may cover one group.
CREATE TABLE device_groups (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT,
    color       TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT uq_device_groups_tenant_name UNIQUE (tenant_id, name),
    CONSTRAINT ck_device_groups_name CHECK (length(btrim(name)) BETWEEN 1 AND 255)
);
CREATE TABLE device_group_members (
    set_id    UUID NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
    device_id UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tenant_id UUID NOT NULL,
    PRIMARY KEY (set_id, device_id)
);
CREATE INDEX ix_device_group_members_device ON device_group_members (tenant_id, device_id);

CREATE TABLE device_tags (
    id          UUID PRIMARY KEY,
    tenant_id   UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    description TEXT,
    color       TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT uq_device_tags_tenant_name UNIQUE (tenant_id, name),
    CONSTRAINT ck_device_tags_name CHECK (length(btrim(name)) BETWEEN 1 AND 255)
);
CREATE TABLE device_tag_members (
    set_id    UUID NOT NULL REFERENCES device_tags (id) ON DELETE CASCADE,
    device_id UUID NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    tenant_id UUID NOT NULL,
    PRIMARY KEY (set_id, device_id)
);
CREATE INDEX ix_device_tag_members_device ON device_tag_members (tenant_id, device_id);

ALTER TABLE alert_rules ADD COLUMN group_id UUID REFERENCES device_groups (id) ON DELETE CASCADE;

GRANT SELECT, INSERT, UPDATE, DELETE ON device_groups, device_group_members, device_tags, device_tag_members TO tod_app;
ALTER TABLE device_groups ENABLE ROW LEVEL SECURITY;
CREATE POLICY device_groups_tenant_isolation ON device_groups TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE device_group_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY device_group_members_tenant_isolation ON device_group_members TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE device_tags ENABLE ROW LEVEL SECURITY;
CREATE POLICY device_tags_tenant_isolation ON device_tags TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE device_tag_members ENABLE ROW LEVEL SECURITY;
CREATE POLICY device_tag_members_tenant_isolation ON device_tag_members TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
