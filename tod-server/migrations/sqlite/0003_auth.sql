-- Users, login sessions, API keys, the audit chain and server secrets.
CREATE TABLE users (
    id           BLOB PRIMARY KEY NOT NULL,
    email        TEXT NOT NULL,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    tenant_id    BLOB REFERENCES tenants (id) ON DELETE CASCADE,
    srp_salt     BLOB NOT NULL,
    srp_verifier BLOB NOT NULL,
    is_active    INTEGER NOT NULL DEFAULT 1,
    last_login   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    CONSTRAINT uq_users_email UNIQUE (email),
    CONSTRAINT ck_users_email CHECK (email = lower(trim(email)) AND length(email) BETWEEN 3 AND 255 AND instr(email, '@') > 1),
    CONSTRAINT ck_users_name CHECK (length(trim(name)) BETWEEN 1 AND 255),
    CONSTRAINT ck_users_role CHECK (role IN ('viewer', 'operator', 'admin', 'super_admin')),
    CONSTRAINT ck_users_tenant CHECK ((role = 'super_admin') = (tenant_id IS NULL)),
    CONSTRAINT ck_users_srp CHECK (length(srp_salt) BETWEEN 8 AND 64 AND length(srp_verifier) BETWEEN 1 AND 256)
);
CREATE INDEX ix_users_tenant ON users (tenant_id);

-- One row per login: the refresh-token family. Only `refresh_jti` is accepted next; presenting
-- an older one revokes the family.
CREATE TABLE auth_sessions (
    id             BLOB PRIMARY KEY NOT NULL,
    user_id        BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_jti    BLOB NOT NULL,
    created_at     TEXT NOT NULL,
    last_used_at   TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    revoked_at     TEXT,
    revoked_reason TEXT
);
CREATE INDEX ix_auth_sessions_user ON auth_sessions (user_id);

-- SRP challenges between init and verify: single use, 60 s.
CREATE TABLE srp_sessions (
    id         BLOB PRIMARY KEY NOT NULL,
    email      TEXT NOT NULL,
    user_id    BLOB REFERENCES users (id) ON DELETE CASCADE,
    b          BLOB NOT NULL,
    salt       BLOB NOT NULL,
    verifier   BLOB NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX ix_srp_sessions_expiry ON srp_sessions (expires_at);

CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY NOT NULL,
    tenant_id    BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_by   BLOB REFERENCES users (id) ON DELETE SET NULL,
    name         TEXT NOT NULL,
    key_prefix   TEXT NOT NULL,
    key_hash     TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT,
    CONSTRAINT uq_api_keys_hash UNIQUE (key_hash),
    CONSTRAINT ck_api_keys_name CHECK (length(trim(name)) BETWEEN 1 AND 255)
);
CREATE INDEX ix_api_keys_tenant ON api_keys (tenant_id, revoked_at);

-- Append-only, hash-chained per tenant (the all-zero tenant is the platform's chain). No foreign
-- key: the record of a deleted tenant outlives it.
CREATE TABLE audit_logs (
    id               BLOB PRIMARY KEY NOT NULL,
    tenant_id        BLOB NOT NULL,
    seq              INTEGER NOT NULL,
    actor_user_id    BLOB,
    actor_api_key_id BLOB,
    action           TEXT NOT NULL,
    resource_type    TEXT,
    resource_id      TEXT,
    details          TEXT NOT NULL,
    ip_address       TEXT,
    created_at       TEXT NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL,
    CONSTRAINT uq_audit_chain UNIQUE (tenant_id, seq)
);
CREATE INDEX ix_audit_logs_created ON audit_logs (tenant_id, created_at);
CREATE TRIGGER audit_logs_no_update BEFORE UPDATE ON audit_logs
BEGIN
    SELECT RAISE(ABORT, 'audit_logs is append-only');
END;
CREATE TRIGGER audit_logs_no_delete BEFORE DELETE ON audit_logs
BEGIN
    SELECT RAISE(ABORT, 'audit_logs is append-only');
END;

CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY NOT NULL,
    value      BLOB NOT NULL,
    created_at TEXT NOT NULL
);
