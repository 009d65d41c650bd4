-- Versions that let a server keep what it read for link discovery between batches: an AP's
-- links as stored, and which device owns each client MAC. The server reads them again only when
-- the version moved, that is when something else (link aging, a roaming client seen by another
-- AP, a deletion) changed them since it last wrote them.
--
-- An AP's version (`link_aps.version`) is raised by every writer of its links: ingest raises it
-- with the AP's last report, aging with the links it ages, and the trigger below when links are
-- deleted (a device deleted, with its links). A tenant's interface version is raised by the
-- triggers below whenever any of its device interfaces is written or deleted.
ALTER TABLE link_aps ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

-- No reference to the tenant: deleting a tenant deletes its interfaces, whose trigger writes here
-- (the tenant's deletion removes its row afterwards).
CREATE TABLE interface_versions (
    tenant_id BLOB PRIMARY KEY NOT NULL,
    version   INTEGER NOT NULL
);

CREATE TRIGGER device_interfaces_inserted AFTER INSERT ON device_interfaces BEGIN
    INSERT INTO interface_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER device_interfaces_updated AFTER UPDATE ON device_interfaces BEGIN
    INSERT INTO interface_versions (tenant_id, version) VALUES (NEW.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER device_interfaces_deleted AFTER DELETE ON device_interfaces BEGIN
    INSERT INTO interface_versions (tenant_id, version) VALUES (OLD.tenant_id, 1)
    ON CONFLICT (tenant_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER wireless_links_deleted AFTER DELETE ON wireless_links BEGIN
    UPDATE link_aps SET version = version + 1 WHERE ap_device_id = OLD.ap_device_id;
END;
