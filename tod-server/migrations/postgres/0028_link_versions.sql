-- Versions that let a server keep what it read for link discovery between batches: an AP's
-- links as stored, and which device owns each client MAC. A server reads them again only when
-- the version moved, that is when someone else (another replica, link aging, a roaming client
-- seen by another AP, a deletion) changed them since it last wrote them.
--
-- An AP's version (`link_aps.version`) is raised by every writer of its links: ingest raises it
-- with the AP's last report, aging with the links it ages, and the trigger below when links are
-- deleted (a device deleted, with its links). A tenant's interface version is raised by the
-- trigger below whenever any of its device interfaces is written or deleted.
ALTER TABLE link_aps ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- No reference to the tenant: deleting a tenant deletes its interfaces, whose trigger writes here
-- (the tenant's deletion removes its row afterwards).
CREATE TABLE interface_versions (
    tenant_id UUID PRIMARY KEY,
    version   BIGINT NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON interface_versions TO tod_app;
ALTER TABLE interface_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY interface_versions_tenant_isolation ON interface_versions TO tod_app
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));

CREATE FUNCTION bump_interface_versions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO interface_versions (tenant_id, version)
    SELECT DISTINCT tenant_id, 1 FROM changed
    ON CONFLICT (tenant_id) DO UPDATE SET version = interface_versions.version + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER device_interfaces_inserted AFTER INSERT ON device_interfaces
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION bump_interface_versions();
CREATE TRIGGER device_interfaces_updated AFTER UPDATE ON device_interfaces
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION bump_interface_versions();
CREATE TRIGGER device_interfaces_deleted AFTER DELETE ON device_interfaces
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION bump_interface_versions();

CREATE FUNCTION bump_link_versions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE link_aps SET version = version + 1 WHERE ap_device_id IN (SELECT ap_device_id FROM changed);
    RETURN NULL;
END $$;
CREATE TRIGGER wireless_links_deleted AFTER DELETE ON wireless_links
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION bump_link_versions();
