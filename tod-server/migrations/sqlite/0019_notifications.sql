-- Notification channels and their deliveries. A channel belongs to a tenant; device alert rules
-- and site alert rules link the channels they notify; a fallback channel receives the alerts of
-- rules that link none (and alerts without a rule, such as a silent agent). The dispatcher reads
-- each tenant's event stream after its own cursor and records one delivery per channel and alert
-- event in the same transaction that advances the cursor; a delivery is retried with backoff
-- and its last outcome kept as the delivery log.
CREATE TABLE notification_channels (
    id         BLOB PRIMARY KEY NOT NULL,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    settings   TEXT NOT NULL,
    sealed     BLOB,
    fallback   INTEGER NOT NULL DEFAULT 0,
    enabled    INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT uq_notification_channels_name UNIQUE (tenant_id, name),
    CONSTRAINT ck_notification_channels_kind CHECK (kind IN ('webhook', 'slack', 'email')),
    CONSTRAINT ck_notification_channels_name CHECK (length(trim(name)) BETWEEN 1 AND 255)
);

CREATE TABLE alert_rule_channels (
    rule_id    BLOB NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    channel_id BLOB NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    PRIMARY KEY (rule_id, channel_id)
);
CREATE INDEX ix_alert_rule_channels_channel ON alert_rule_channels (channel_id);

CREATE TABLE site_alert_rule_channels (
    rule_id    BLOB NOT NULL REFERENCES site_alert_rules (id) ON DELETE CASCADE,
    channel_id BLOB NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    PRIMARY KEY (rule_id, channel_id)
);
CREATE INDEX ix_site_alert_rule_channels_channel ON site_alert_rule_channels (channel_id);

CREATE TABLE notification_cursors (
    tenant_id BLOB PRIMARY KEY NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq       INTEGER NOT NULL
);

CREATE TABLE notification_deliveries (
    id              BLOB PRIMARY KEY NOT NULL,
    tenant_id       BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel_id      BLOB NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    event_seq       INTEGER NOT NULL,
    event           TEXT NOT NULL,
    alert_key       TEXT NOT NULL,
    notice          TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT,
    CONSTRAINT uq_notification_deliveries_event UNIQUE (channel_id, event_seq),
    CONSTRAINT ck_notification_deliveries_state CHECK (state IN ('pending', 'delivered', 'failed'))
);
CREATE INDEX ix_notification_deliveries_due ON notification_deliveries (state, next_attempt_at);
CREATE INDEX ix_notification_deliveries_alert ON notification_deliveries (channel_id, alert_key, event_seq);
CREATE INDEX ix_notification_deliveries_log ON notification_deliveries (tenant_id, created_at);
