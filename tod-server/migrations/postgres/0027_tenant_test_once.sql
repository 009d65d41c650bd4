-- The tenant test of every tenant table's policy, evaluated once per statement instead of once
-- per row: as a scalar subquery the setting is read and parsed as a UUID in an InitPlan, where
-- `current_setting(...)::uuid` was called for each row written or read (an ingest batch writes
-- thousands; a page of links reads as many). Same test, same rows admitted.

ALTER POLICY sites_tenant_isolation ON sites
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY users_tenant_isolation ON users
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY api_keys_tenant_isolation ON api_keys
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY audit_logs_tenant_isolation ON audit_logs
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY devices_tenant_isolation ON devices
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY agents_tenant_isolation ON agents
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY ingest_batches_tenant_isolation ON ingest_batches
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY registrations_tenant_isolation ON registrations
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY device_metrics_tenant_isolation ON device_metrics
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY device_interfaces_tenant_isolation ON device_interfaces
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY wireless_links_tenant_isolation ON wireless_links
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY link_aps_tenant_isolation ON link_aps
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY link_events_tenant_isolation ON link_events
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY site_alert_events_tenant_isolation ON site_alert_events
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY sectors_tenant_isolation ON sectors
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY site_alert_rules_tenant_isolation ON site_alert_rules
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY alert_rules_tenant_isolation ON alert_rules
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY alert_events_tenant_isolation ON alert_events
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY alert_state_tenant_isolation ON alert_state
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY plugins_tenant_isolation ON plugins
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY plugin_assignments_tenant_isolation ON plugin_assignments
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY radio_stats_tenant_isolation ON radio_stats
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY interface_traffic_tenant_isolation ON interface_traffic
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY maintenance_windows_tenant_isolation ON maintenance_windows
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY suppressed_alerts_tenant_isolation ON suppressed_alerts
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY device_groups_tenant_isolation ON device_groups
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY device_group_members_tenant_isolation ON device_group_members
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY device_tags_tenant_isolation ON device_tags
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY device_tag_members_tenant_isolation ON device_tag_members
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY device_events_tenant_isolation ON device_events
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY event_stream_heads_tenant_isolation ON event_stream_heads
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY event_stream_tenant_isolation ON event_stream
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY notification_cursors_tenant_isolation ON notification_cursors
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY notification_channels_tenant_isolation ON notification_channels
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY alert_rule_channels_tenant_isolation ON alert_rule_channels
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY site_alert_rule_channels_tenant_isolation ON site_alert_rule_channels
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY notification_deliveries_tenant_isolation ON notification_deliveries
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY signal_hourly_tenant_isolation ON signal_hourly
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
ALTER POLICY signal_hourly_dirty_tenant_isolation ON signal_hourly_dirty
    USING (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid))
    WITH CHECK (tenant_id = (SELECT NULLIF(current_setting('tod.tenant_id', true), '')::uuid));
