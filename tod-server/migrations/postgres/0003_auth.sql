-- Users, login sessions, API keys, the audit chain and server secrets.
CREATE TABLE users (
    id           UUID PRIMARY KEY,
    email        TEXT NOT NULL,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    tenant_id    UUID REFERENCES tenants (id) ON DELETE CASCADE,
    srp_salt     BYTEA NOT NULL,
    srp_verifier BYTEA NOT NULL,
    is_active    BOOLEAN NOT NULL DEFAULT TRUE,
    last_login   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT uq_users_email UNIQUE (email),
    CONSTRAINT ck_users_email CHECK (email = lower(btrim(email)) AND length(email) BETWEEN 3 AND 255 AND strpos(email, '@') > 1),
    CONSTRAINT ck_users_name CHECK (length(btrim(name)) BETWEEN 1 AND 255),
    CONSTRAINT ck_users_role CHECK (role IN ('viewer', 'operator', 'admin', 'super_admin')),
    CONSTRAINT ck_users_tenant CHECK ((role = 'super_admin') = (tenant_id IS NULL)),
    CONSTRAINT ck_users_srp CHECK (octet_length(srp_salt) BETWEEN 8 AND 64 AND octet_length(srp_verifier) BETWEEN 1 AND 256)
);
CREATE INDEX ix_users_tenant ON users (tenant_id);

-- One row per login: the refresh-token family. Only `refresh_jti` is accepted next; presenting
-- an older one revokes the family.
CREATE TABLE auth_sessions (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_jti    UUID NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    last_used_at   TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT
);
CREATE INDEX ix_auth_sessions_user ON auth_sessions (user_id);

-- SRP challenges between init and verify: single use, 60 s.
CREATE TABLE srp_sessions (
    id         UUID PRIMARY KEY,
    email      TEXT NOT NULL,
    user_id    UUID REFERENCES users (id) ON DELETE CASCADE,
    b          BYTEA NOT NULL,
    salt       BYTEA NOT NULL,
    verifier   BYTEA NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX ix_srp_sessions_expiry ON srp_sessions (expires_at);

CREATE TABLE api_keys (
    id           UUID PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_by   UUID REFERENCES users (id) ON DELETE SET NULL,
    name         TEXT NOT NULL,
    key_prefix   TEXT NOT NULL,
    key_hash     TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    CONSTRAINT uq_api_keys_hash UNIQUE (key_hash),
    CONSTRAINT ck_api_keys_name CHECK (length(btrim(name)) BETWEEN 1 AND 255)
);
CREATE INDEX ix_api_keys_tenant ON api_keys (tenant_id, revoked_at);

-- Append-only, hash-chained per tenant (the all-zero tenant is the platform's chain). No foreign
-- key: the record of a deleted tenant outlives it.
CREATE TABLE audit_logs (
    id               UUID PRIMARY KEY,
    tenant_id        UUID NOT NULL,
    seq              BIGINT NOT NULL,
    actor_user_id    UUID,
    actor_api_key_id UUID,
    action           TEXT NOT NULL,
    resource_type    TEXT,
    resource_id      TEXT,
    details          TEXT NOT NULL,
    ip_address       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL,
    CONSTRAINT uq_audit_chain UNIQUE (tenant_id, seq)
);
CREATE INDEX ix_audit_logs_created ON audit_logs (tenant_id, created_at);
CREATE FUNCTION tod_audit_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_logs is append-only';
END
$$;
CREATE TRIGGER audit_logs_append_only BEFORE UPDATE OR DELETE ON audit_logs
    FOR EACH ROW EXECUTE FUNCTION tod_audit_logs_append_only();

CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY NOT NULL,
    value      BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Row-Level Security for tenant-scoped work (role tod_app, tenant in tod.tenant_id; see 0002).
-- Platform work (login by e-mail, API-key lookup, super-admin views) runs as the owner.
GRANT SELECT, INSERT, UPDATE, DELETE ON users TO tod_app;
GRANT SELECT, INSERT, UPDATE ON api_keys TO tod_app;
GRANT SELECT, INSERT ON audit_logs TO tod_app;
GRANT SELECT, INSERT, UPDATE ON auth_sessions TO tod_app;

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_tenant_isolation ON users TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY api_keys_tenant_isolation ON api_keys TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_logs_tenant_isolation ON audit_logs TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE auth_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY auth_sessions_tenant_isolation ON auth_sessions TO tod_app
    USING (user_id IN (SELECT id FROM users))
    WITH CHECK (user_id IN (SELECT id FROM users));
