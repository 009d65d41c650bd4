-- The device event log: reachability changes, reboots (uptime went backwards) and RouterOS
-- version changes, found at ingest by comparing each newer report with what was seen before
-- (the last uptime is kept on the device for that). Link state changes stay in link_events.
ALTER TABLE devices ADD COLUMN uptime_secs INTEGER;

CREATE TABLE device_events (
    id         BLOB PRIMARY KEY NOT NULL,
    tenant_id  BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    device_id  BLOB NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    from_value TEXT,
    to_value   TEXT NOT NULL,
    message    TEXT NOT NULL,
    at         TEXT NOT NULL,
    CONSTRAINT ck_device_events_kind CHECK (kind IN ('status', 'reboot', 'version'))
);
CREATE INDEX ix_device_events_tenant ON device_events (tenant_id, at);
CREATE INDEX ix_device_events_device ON device_events (tenant_id, device_id, at);
