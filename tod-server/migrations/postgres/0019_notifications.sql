-- Notification channels and their deliveries. A channel belongs to a tenant; device alert rules
-- and site alert rules link the channels they notify; a fallback channel receives the alerts of
-- rules that link none (and alerts without a rule, such as a silent agent). The dispatcher reads
-- each tenant's event stream after its own cursor and records one delivery per channel and alert
-- event in the same transaction that advances the cursor; a delivery is retried with backoff
-- and its last outcome kept as the delivery log.
CREATE TABLE notification_channels (
    id         UUID PRIMARY KEY,
    tenant_id  UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    settings   TEXT NOT NULL,
    sealed     BYTEA,
    fallback   BOOLEAN NOT NULL DEFAULT FALSE,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT uq_notification_channels_name UNIQUE (tenant_id, name),
    CONSTRAINT ck_notification_channels_kind CHECK (kind IN ('webhook', 'slack', 'email')),
    CONSTRAINT ck_notification_channels_name CHECK (length(btrim(name)) BETWEEN 1 AND 255)
);

CREATE TABLE alert_rule_channels (
    rule_id    UUID NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    channel_id UUID NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    tenant_id  UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    PRIMARY KEY (rule_id, channel_id)
);
CREATE INDEX ix_alert_rule_channels_channel ON alert_rule_channels (channel_id);

CREATE TABLE site_alert_rule_channels (
    rule_id    UUID NOT NULL REFERENCES site_alert_rules (id) ON DELETE CASCADE,
    channel_id UUID NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    tenant_id  UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    PRIMARY KEY (rule_id, channel_id)
);
CREATE INDEX ix_site_alert_rule_channels_channel ON site_alert_rule_channels (channel_id);

CREATE TABLE notification_cursors (
    tenant_id UUID PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL
);

CREATE TABLE notification_deliveries (
    id              UUID PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_id      UUID NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    event_seq       BIGINT NOT NULL,
    event           TEXT NOT NULL,
    alert_key       TEXT NOT NULL,
    notice          TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    CONSTRAINT uq_notification_deliveries_event UNIQUE (channel_id, event_seq),
    CONSTRAINT ck_notification_deliveries_state CHECK (state IN ('pending', 'delivered', 'failed'))
);
CREATE INDEX ix_notification_deliveries_due ON notification_deliveries (state, next_attempt_at);
CREATE INDEX ix_notification_deliveries_alert ON notification_deliveries (channel_id, alert_key, event_seq);
CREATE INDEX ix_notification_deliveries_log ON notification_deliveries (tenant_id, created_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON notification_channels, alert_rule_channels, site_alert_rule_channels,
    notification_cursors, notification_deliveries TO tod_app;
ALTER TABLE notification_cursors ENABLE ROW LEVEL SECURITY;
CREATE POLICY notification_cursors_tenant_isolation ON notification_cursors TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE notification_channels ENABLE ROW LEVEL SECURITY;
CREATE POLICY notification_channels_tenant_isolation ON notification_channels TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE alert_rule_channels ENABLE ROW LEVEL SECURITY;
CREATE POLICY alert_rule_channels_tenant_isolation ON alert_rule_channels TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE site_alert_rule_channels ENABLE ROW LEVEL SECURITY;
CREATE POLICY site_alert_rule_channels_tenant_isolation ON site_alert_rule_channels TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
ALTER TABLE notification_deliveries ENABLE ROW LEVEL SECURITY;
CREATE POLICY notification_deliveries_tenant_isolation ON notification_deliveries TO tod_app
    USING (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = NULLIF(current_setting('tod.tenant_id', true), '')::uuid);
