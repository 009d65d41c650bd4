-- Signal history reads one client as one AP saw it over up to 30 days. The (tenant, mac, time)
-- index found the client's rows but every row was then fetched from the table; this index holds
-- the AP and the signal too, so the read is one range scan of the index alone. It replaces the
-- old one (nothing else searched by MAC), so ingest maintains no more indexes than before.
DROP INDEX ix_registrations_mac;
CREATE INDEX ix_registrations_client ON registrations (tenant_id, mac, device_id, collected_at, signal_dbm);

-- A page of a tenant's links comes in (AP, CPE) order: read it from an index in that order
-- instead of sorting every link of the tenant for each page.
CREATE INDEX ix_wireless_links_order ON wireless_links (tenant_id, ap_device_id, cpe_device_id);

-- Site health rollups count a tenant's devices per site and status: from this index alone (it
-- replaces the (tenant, site) index, which it begins with).
DROP INDEX ix_devices_tenant_site;
CREATE INDEX ix_devices_rollup ON devices (tenant_id, site_id, status);
