-- How an agent reaches a device: API port, transport, pinned certificate fingerprint, and the
-- RouterOS login sealed by the server's vault (never stored or returned in the clear).
ALTER TABLE devices ADD COLUMN api_port INTEGER NOT NULL DEFAULT 8728;
ALTER TABLE devices ADD COLUMN transport TEXT NOT NULL DEFAULT 'plain';
ALTER TABLE devices ADD COLUMN fingerprint TEXT;
ALTER TABLE devices ADD COLUMN credentials BLOB;
