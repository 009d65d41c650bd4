//! The REST API: one route table, one guard.
//!
//! Every route is declared in [`routes`] with the access it needs. The router is built from that
//! table and wraps each handler in [`guard`], which authenticates the caller, resolves the tenant
//! the route addresses and asks tod-core's [`authorize`] — so a handler cannot forget the check,
//! and the RBAC matrix test walks the same table ([`route_table`]).

mod alerts;
mod audit;
mod auth;
mod device_alerts;
mod device_sets;
pub mod doc;
mod events;
mod fleet;
mod maintenance;
mod metrics;
mod notify;
mod plugins;
mod sectors;
mod site_rules;
mod sites;
mod sse;
mod tenants;
mod users;
mod viewers;
mod vpn;
mod wireless;

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, on};
use tod_core::TenantId;
use tod_core::rbac::{Action, authorize};
use utoipa::ToSchema;
use utoipa::openapi::{RefOr, Schema};

use crate::app::AppState;
use crate::auth::authenticate;
use crate::error::ApiError;

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; `limited` routes count against the per-address authentication rate limit.
    Public {
        /// Whether the auth rate limit applies.
        limited: bool,
    },
    /// Any authenticated caller; the handler decides the rest.
    Authenticated,
    /// The action on the tenant named by the path's `{tenant_id}`.
    Tenant(Action),
    /// The action on the caller's own tenant (a super admin acts platform-wide).
    Own(Action),
    /// A tower agent with its own credential (`toda_…`); users and API keys are refused.
    Agent,
}

/// One row of the route table.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: &'static str,
    /// Path, with `{name}` parameters.
    pub path: &'static str,
    /// What the caller needs.
    pub access: Access,
    /// One line for the API documentation.
    pub summary: &'static str,
    /// Query parameters.
    pub query: &'static [&'static str],
    /// The request body's schema.
    pub request: Option<SchemaFn>,
    /// Status of a successful answer.
    pub status: u16,
    /// Its body.
    pub answer: Answer,
}

/// The tenant a guarded route addresses, once authorized (`None`: platform-wide, super admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantScope(pub Option<TenantId>);

/// The client address of a public route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

type Handler = MethodRouter<AppState>;

/// Registers a type's schema (and the schemas it refers to) and returns its name.
pub type SchemaFn = fn(&mut Vec<(String, RefOr<Schema>)>) -> String;

fn schema<T: ToSchema>(acc: &mut Vec<(String, RefOr<Schema>)>) -> String {
    acc.push((T::name().into_owned(), T::schema()));
    T::schemas(acc);
    T::name().into_owned()
}

/// The documented shape of a successful answer.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// No body.
    Empty,
    /// One object.
    One(SchemaFn),
    /// A JSON array of objects.
    Many(SchemaFn),
}

macro_rules! route {
    ($method:ident $path:literal, $access:expr, $handler:expr; $summary:literal
     $(, query $query:expr)? $(, body $req:ty)?, $status:literal $($kind:ident $resp:ty)?) => {
        (
            RouteSpec {
                method: stringify!($method),
                path: $path,
                access: $access,
                summary: $summary,
                query: doc_part!(query $($query)?),
                request: doc_part!(body $($req)?),
                status: $status,
                answer: doc_part!(answer $($kind $resp)?),
            },
            on(axum::routing::MethodFilter::$method, $handler),
        )
    };
}

macro_rules! doc_part {
    (query) => {
        &[]
    };
    (query $q:expr) => {
        $q
    };
    (body) => {
        None
    };
    (body $t:ty) => {
        Some(schema::<$t> as SchemaFn)
    };
    (answer) => {
        Answer::Empty
    };
    (answer one $t:ty) => {
        Answer::One(schema::<$t>)
    };
    (answer many $t:ty) => {
        Answer::Many(schema::<$t>)
    };
}

fn routes() -> Vec<(RouteSpec, Handler)> {
    use crate::store::{
        Agent, AlertRule, ApiKey, AuditRecord, ChainCheck, Device, DeviceAlert, Plugin, PluginAssignment, Sector, Site,
        SiteAlertEvent, SiteAlertRule, Tenant, User, WirelessLink,
    };
    use Access::*;
    use doc::{Challenge, CreatedApiKey, Health, LoginAnswer, Me, Ready, Status, TokenAnswer};
    let open = Public { limited: false };
    let limited = Public { limited: true };
    vec![
        route!(GET "/health", open, crate::app::health; "Liveness", 200 one Health),
        route!(GET "/api/health", open, crate::app::health; "Liveness (alias under /api)", 200 one Health),
        route!(GET "/health/ready", open, crate::app::ready; "Readiness: 200 only when the database answers", 200 one Ready),
        route!(GET "/api/openapi.json", open, doc::spec; "This OpenAPI document", 200),
        route!(POST "/api/auth/srp/init", limited, auth::srp_init; "SRP-6a step 1: the challenge", body auth::InitBody, 200 one Challenge),
        route!(POST "/api/auth/srp/verify", limited, auth::srp_verify; "SRP-6a step 2: the proof; returns tokens and M2", body auth::VerifyBody, 200 one LoginAnswer),
        route!(POST "/api/auth/login", limited, auth::login; "Log in (the SRP verify body; passwords get 409 srp_required)", body auth::VerifyBody, 200 one LoginAnswer),
        route!(POST "/api/auth/refresh", limited, auth::refresh; "New tokens for the latest refresh token (body or cookie)", body auth::RefreshBody, 200 one TokenAnswer),
        route!(POST "/api/auth/logout", Authenticated, auth::logout; "End the current session", 200 one Status),
        route!(GET "/api/auth/me", Authenticated, auth::me; "The caller", 200 one Me),
        route!(POST "/api/auth/change-password", Authenticated, auth::change_password; "Replace the caller's SRP salt and verifier", body auth::PasswordBody, 200 one Status),
        route!(GET "/api/tenants", Own(Action::TenantRead), tenants::list; "Tenants (a super admin sees all)", 200 many Tenant),
        route!(POST "/api/tenants", Own(Action::TenantManage), tenants::create; "Create a tenant", body tenants::NewTenant, 201 one Tenant),
        route!(GET "/api/tenants/{tenant_id}", Tenant(Action::TenantRead), tenants::get; "One tenant", 200 one Tenant),
        route!(PATCH "/api/tenants/{tenant_id}", Tenant(Action::TenantManage), tenants::update; "Rename or re-describe a tenant", body tenants::TenantPatch, 200 one Tenant),
        route!(DELETE "/api/tenants/{tenant_id}", Tenant(Action::TenantManage), tenants::delete; "Delete a tenant and everything it owns", 204),
        route!(GET "/api/tenants/{tenant_id}/sites", Tenant(Action::SiteRead), sites::list; "A tenant's sites with their health rollup, and the count of devices with no site", 200 one sites::SiteList),
        route!(POST "/api/tenants/{tenant_id}/sites", Tenant(Action::SiteWrite), sites::create; "Create a site", body sites::SiteBody, 201 one Site),
        route!(GET "/api/tenants/{tenant_id}/sites/{site_id}", Tenant(Action::SiteRead), sites::get; "One site with its health rollup", 200 one sites::SiteHealth),
        route!(PUT "/api/tenants/{tenant_id}/sites/{site_id}", Tenant(Action::SiteWrite), sites::update; "Change a site's name or coordinates (only the fields given; null clears a coordinate)", body sites::SiteUpdate, 200 one sites::SiteHealth),
        route!(DELETE "/api/tenants/{tenant_id}/sites/{site_id}", Tenant(Action::SiteDelete), sites::delete; "Delete a site: its devices lose their site, its agents and their tunnels go", 204),
        route!(GET "/api/tenants/{tenant_id}/sites/{site_id}/sectors", Tenant(Action::SectorRead), sectors::list; "A site's sectors with device counts and their APs' clients, degraded links and average signal", 200 one sectors::SectorPage),
        route!(POST "/api/tenants/{tenant_id}/sites/{site_id}/sectors", Tenant(Action::SectorWrite), sectors::create; "Create a sector (azimuth 0-360, name unique at the site)", body sectors::SectorBody, 201 one Sector),
        route!(PUT "/api/tenants/{tenant_id}/sites/{site_id}/sectors/{sector_id}", Tenant(Action::SectorWrite), sectors::update; "Change a sector (only the fields given; null clears)", body sectors::SectorBody, 200 one Sector),
        route!(DELETE "/api/tenants/{tenant_id}/sites/{site_id}/sectors/{sector_id}", Tenant(Action::SectorDelete), sectors::delete; "Delete a sector (its devices stay at the site)", 204),
        route!(PUT "/api/tenants/{tenant_id}/devices/{device_id}/sector", Tenant(Action::SectorWrite), sectors::set_device_sector; "Put a device in a sector at its own site, or clear it with null", body sectors::DeviceSector, 204),
        route!(POST "/api/tenants/{tenant_id}/sites/{site_id}/devices/bulk-assign", Tenant(Action::SiteWrite), sites::bulk_assign; "Put many devices at the site (other tenants' ids are skipped)", body sites::BulkAssign, 200 one sites::Assigned),
        route!(POST "/api/tenants/{tenant_id}/sites/{site_id}/devices/{device_id}", Tenant(Action::SiteWrite), sites::assign; "Put a device at the site", 204),
        route!(DELETE "/api/tenants/{tenant_id}/sites/{site_id}/devices/{device_id}", Tenant(Action::SiteWrite), sites::unassign; "Take a device off the site", 204),
        route!(GET "/api/plugins", Own(Action::PluginRead), plugins::list; "The tenant's WASM alert plugins with their assignments and, for a stopped plugin, why", query &["tenant_id"], 200 one plugins::PluginList),
        route!(POST "/api/plugins", Own(Action::PluginWrite), plugins::upload; "Upload a plugin (base64 component, at most 8 MiB): validated by compiling it and asking for its metadata", query &["tenant_id"], body plugins::PluginUpload, 201 one Plugin),
        route!(GET "/api/plugins/{plugin_id}", Own(Action::PluginRead), plugins::get; "One plugin", query &["tenant_id"], 200 one Plugin),
        route!(PUT "/api/plugins/{plugin_id}", Own(Action::PluginWrite), plugins::update; "Configure, enable or disable a plugin (only the fields given); enabling a stopped plugin runs it again, and any change resolves its open events", query &["tenant_id"], body plugins::PluginUpdate, 200 one Plugin),
        route!(DELETE "/api/plugins/{plugin_id}", Own(Action::PluginWrite), plugins::delete; "Delete a plugin; its open events resolve and stay as history", query &["tenant_id"], 204),
        route!(POST "/api/plugins/{plugin_id}/assignments", Own(Action::PluginWrite), plugins::assign; "Run a plugin over the tenant, a site or a sector, with configuration of its own", query &["tenant_id"], body plugins::AssignmentBody, 201 one PluginAssignment),
        route!(DELETE "/api/plugins/{plugin_id}/assignments/{assignment_id}", Own(Action::PluginWrite), plugins::unassign; "Stop running a plugin there; its open events there resolve", query &["tenant_id"], 204),
        route!(POST "/api/plugins/{plugin_id}/backtest", Own(Action::PluginRead), plugins::backtest; "Replay a plugin over stored history: what it would have raised and when (nothing is stored)", query &["tenant_id"], body plugins::BacktestBody, 200 one crate::plugins::Backtest),
        route!(GET "/api/alerts/rules", Own(Action::AlertRead), device_alerts::list_rules; "Device alert rules of the caller's tenant, defaults first (a super admin names ?tenant_id=)", query &["tenant_id"], 200 one device_alerts::RulePage),
        route!(POST "/api/alerts/rules", Own(Action::AlertRuleWrite), device_alerts::create_rule; "Create a device alert rule (tenant-wide, or for one device, overriding tenant-wide rules of its metric)", query &["tenant_id"], body device_alerts::AlertRuleBody, 201 one AlertRule),
        route!(GET "/api/alerts/rules/{rule_id}", Own(Action::AlertRead), device_alerts::get_rule; "One device alert rule", query &["tenant_id"], 200 one AlertRule),
        route!(PUT "/api/alerts/rules/{rule_id}", Own(Action::AlertRuleWrite), device_alerts::update_rule; "Change a device alert rule (only the fields given); disabling it or changing what it tests resolves its open alerts", query &["tenant_id"], body device_alerts::AlertRuleBody, 200 one AlertRule),
        route!(POST "/api/alerts/rules/{rule_id}/toggle", Own(Action::AlertRuleWrite), device_alerts::toggle_rule; "Enable or disable a device alert rule", query &["tenant_id"], 200 one device_alerts::Toggled),
        route!(DELETE "/api/alerts/rules/{rule_id}", Own(Action::AlertRuleDelete), device_alerts::delete_rule; "Delete a device alert rule (default rules can only be disabled: 422); its open alerts are resolved", query &["tenant_id"], 204),
        route!(GET "/api/alerts", Own(Action::AlertRead), device_alerts::list_alerts; "Device alert history, newest first (?status, ?severity, ?device_id, ?rule_id, ?start_date, ?end_date, ?page, ?per_page=1..200)", query &["tenant_id", "status", "severity", "device_id", "rule_id", "start_date", "end_date", "page", "per_page"], 200 one device_alerts::AlertPage),
        route!(GET "/api/alerts/channels", Own(Action::AlertRead), notify::list; "Notification channels of the tenant (secrets are never returned)", query &["tenant_id"], 200 one notify::ChannelPage),
        route!(POST "/api/alerts/channels", Own(Action::NotificationChannelWrite), notify::create; "Create a notification channel: webhook (signed with HMAC-SHA256 when it has a secret), Slack-compatible webhook, or e-mail over SMTP", query &["tenant_id"], body notify::ChannelBody, 201 one notify::Channel),
        route!(GET "/api/alerts/channels/{channel_id}", Own(Action::AlertRead), notify::get; "One notification channel", query &["tenant_id"], 200 one notify::Channel),
        route!(PUT "/api/alerts/channels/{channel_id}", Own(Action::NotificationChannelWrite), notify::update; "Change a notification channel (only the fields given; null removes a secret)", query &["tenant_id"], body notify::ChannelBody, 200 one notify::Channel),
        route!(DELETE "/api/alerts/channels/{channel_id}", Own(Action::NotificationChannelWrite), notify::delete; "Delete a notification channel with its rule links and delivery log", query &["tenant_id"], 204),
        route!(POST "/api/alerts/channels/{channel_id}/test", Own(Action::NotificationChannelWrite), notify::test; "Send a test notice through a channel now and say how it went", query &["tenant_id"], 200 one notify::TestResult),
        route!(GET "/api/alerts/deliveries", Own(Action::AlertRead), notify::deliveries; "The notification delivery log, newest first: state, attempts, last status and error", query &["tenant_id", "channel_id", "state", "page", "per_page"], 200 one notify::DeliveryPage),
        route!(GET "/api/alerts/rules/{rule_id}/channels", Own(Action::AlertRead), notify::get_device_rule_channels; "The channels a device alert rule notifies (none: the fallback channels)", query &["tenant_id"], 200 one notify::RuleChannels),
        route!(PUT "/api/alerts/rules/{rule_id}/channels", Own(Action::AlertRuleWrite), notify::put_device_rule_channels; "Set the channels a device alert rule notifies", query &["tenant_id"], body notify::RuleChannels, 200 one notify::RuleChannels),
        route!(GET "/api/tenants/{tenant_id}/sites/{site_id}/alert-rules/{rule_id}/channels", Tenant(Action::SiteAlertRead), notify::get_site_rule_channels; "The channels a site alert rule notifies (none: the fallback channels)", 200 one notify::RuleChannels),
        route!(PUT "/api/tenants/{tenant_id}/sites/{site_id}/alert-rules/{rule_id}/channels", Tenant(Action::SiteAlertRuleWrite), notify::put_site_rule_channels; "Set the channels a site alert rule notifies", body notify::RuleChannels, 200 one notify::RuleChannels),
        route!(GET "/api/alerts/active-count", Own(Action::AlertRead), device_alerts::active_count; "Open device alerts that are not silenced", query &["tenant_id"], 200 one device_alerts::ActiveCount),
        route!(POST "/api/alerts/{alert_id}/acknowledge", Own(Action::AlertEventWrite), device_alerts::acknowledge; "Acknowledge a device alert", query &["tenant_id"], 200 one DeviceAlert),
        route!(POST "/api/alerts/{alert_id}/silence", Own(Action::AlertEventWrite), device_alerts::silence; "Silence an open device alert for a number of minutes", query &["tenant_id"], body device_alerts::SilenceBody, 200 one DeviceAlert),
        route!(GET "/api/events", Own(Action::DeviceRead), events::list; "The device event log, newest first: reachability changes, reboots, RouterOS version changes and wireless link state changes (?device_id, ?kind, ?start, ?end, ?limit=1..500, ?offset)", query &["tenant_id", "device_id", "kind", "start", "end", "limit", "offset"], 200 one events::EventPage),
        route!(GET "/api/sse/events", Own(Action::DeviceRead), sse::events; "Server-Sent Events: the tenant's device status, reboot, version, link state and alert changes as they commit, numbered per tenant; reconnect with Last-Event-ID (or ?last_event_id) to resume, ?kinds to narrow", query &["tenant_id", "last_event_id", "kinds"], 200),
        route!(GET "/api/maintenance-windows", Own(Action::MaintenanceRead), maintenance::list; "Maintenance windows, latest start first, each with its status now and its current or next occurrence (?status=active|upcoming|past)", query &["tenant_id", "status"], 200 many maintenance::WindowView),
        route!(POST "/api/maintenance-windows", Own(Action::MaintenanceWrite), maintenance::create; "Create a maintenance window over devices, sites or the whole tenant, once or repeating daily/weekly (end after start; devices and sites must be the tenant's)", query &["tenant_id"], body maintenance::WindowBody, 201 one maintenance::WindowView),
        route!(GET "/api/maintenance-windows/{window_id}", Own(Action::MaintenanceRead), maintenance::get; "One maintenance window", query &["tenant_id"], 200 one maintenance::WindowView),
        route!(PUT "/api/maintenance-windows/{window_id}", Own(Action::MaintenanceWrite), maintenance::update; "Change a maintenance window (only the fields given; the result is checked whole)", query &["tenant_id"], body maintenance::WindowBody, 200 one maintenance::WindowView),
        route!(DELETE "/api/maintenance-windows/{window_id}", Own(Action::MaintenanceWrite), maintenance::delete; "Delete a maintenance window and its record of suppressed alerts", query &["tenant_id"], 204),
        route!(GET "/api/maintenance-windows/{window_id}/suppressed", Own(Action::MaintenanceRead), maintenance::suppressed; "The alerts a window held back, newest first (?limit=1..500, default 100)", query &["tenant_id", "limit"], 200 one maintenance::SuppressedPage),
        route!(GET "/api/tenants/{tenant_id}/sites/{site_id}/alert-rules", Tenant(Action::SiteAlertRead), site_rules::list; "A site's alert rules, newest first (?sector_id= for one sector's)", query &["sector_id"], 200 one site_rules::RulePage),
        route!(GET "/api/tenants/{tenant_id}/sites/{site_id}/alert-rules/{rule_id}", Tenant(Action::SiteAlertRead), site_rules::get; "One alert rule", 200 one SiteAlertRule),
        route!(POST "/api/tenants/{tenant_id}/sites/{site_id}/alert-rules", Tenant(Action::SiteAlertRuleWrite), site_rules::create; "Create a site or sector alert rule (type, unit and threshold range checked; the sector must be at the site)", body site_rules::RuleBody, 201 one SiteAlertRule),
        route!(PUT "/api/tenants/{tenant_id}/sites/{site_id}/alert-rules/{rule_id}", Tenant(Action::SiteAlertRuleWrite), site_rules::update; "Change an alert rule (only the fields given; an empty body returns it unchanged); disabling or retargeting it resolves its active events", body site_rules::RuleBody, 200 one SiteAlertRule),
        route!(DELETE "/api/tenants/{tenant_id}/sites/{site_id}/alert-rules/{rule_id}", Tenant(Action::SiteAlertRuleWrite), site_rules::delete; "Delete an alert rule (its active events are resolved and kept as history)", 204),
        route!(POST "/api/tenants/{tenant_id}/sites/{site_id}/alert-rules/{rule_id}/backtest", Tenant(Action::SiteAlertRead), plugins::backtest_site_rule; "Replay an alert rule over stored history: what it would have raised and when (nothing is stored; not for signal_degradation)", body plugins::BacktestBody, 200 one crate::plugins::Backtest),
        route!(GET "/api/tenants/{tenant_id}/sites/{site_id}/alert-events", Tenant(Action::SiteAlertRead), alerts::list_events; "A site's alert events, newest first (?state=active|resolved, ?limit=1..200, default 50)", query &["state", "limit"], 200 one alerts::EventPage),
        route!(POST "/api/tenants/{tenant_id}/alert-events/{event_id}/resolve", Tenant(Action::SiteAlertEventResolve), alerts::resolve; "Resolve an active alert event by hand", 200 one SiteAlertEvent),
        route!(GET "/api/tenants/{tenant_id}/alert-events/count", Tenant(Action::SiteAlertRead), alerts::active_count; "Active alert events in the tenant (the notification badge)", 200 one alerts::ActiveCount),
        route!(GET "/api/tenants/{tenant_id}/api-keys", Tenant(Action::ApiKeyManage), users::list_keys; "A tenant's API keys (never the keys themselves)", 200 many ApiKey),
        route!(POST "/api/tenants/{tenant_id}/api-keys", Tenant(Action::ApiKeyManage), users::create_key; "Create an API key (shown once)", body users::NewKeyBody, 201 one CreatedApiKey),
        route!(DELETE "/api/tenants/{tenant_id}/api-keys/{key_id}", Tenant(Action::ApiKeyManage), users::revoke_key; "Revoke an API key", 200 one Status),
        route!(GET "/api/api-keys", Own(Action::ApiKeyManage), users::list_own_keys; "The caller's tenant's API keys (a super admin names ?tenant_id=)", query &["tenant_id"], 200 many ApiKey),
        route!(POST "/api/api-keys", Own(Action::ApiKeyManage), users::create_own_key; "Create an API key in the caller's tenant (a super admin names ?tenant_id=)", query &["tenant_id"], body users::NewKeyBody, 201 one CreatedApiKey),
        route!(DELETE "/api/api-keys/{key_id}", Own(Action::ApiKeyManage), users::revoke_own_key; "Revoke an API key of the caller's tenant (a super admin names ?tenant_id=)", query &["tenant_id"], 200 one Status),
        route!(GET "/api/tenants/{tenant_id}/devices", Tenant(Action::DeviceRead), fleet::list_devices; "A tenant's devices by name, filtered (?site_id, ?unassigned=true, ?sector_id, ?group_id, ?tag_id, ?status, ?search in name or host) and paged (?limit=1..1000, ?offset; X-Total-Count has the full count)", query &["site_id", "unassigned", "sector_id", "group_id", "tag_id", "status", "search", "limit", "offset"], 200 many Device),
        route!(POST "/api/tenants/{tenant_id}/devices", Tenant(Action::DeviceWrite), fleet::create_device; "Register a device", body fleet::NewDeviceBody, 201 one Device),
        route!(GET "/api/tenants/{tenant_id}/devices/{device_id}", Tenant(Action::DeviceRead), fleet::get_device; "One device", 200 one Device),
        route!(PUT "/api/tenants/{tenant_id}/devices/{device_id}", Tenant(Action::DeviceWrite), fleet::update_device; "Change a device (only the fields given): name, host, site (null for none; another site clears the sector), port, transport, fingerprint, or its sealed login (username and password to replace it, username null to remove it)", body fleet::DeviceUpdateBody, 200 one Device),
        route!(DELETE "/api/tenants/{tenant_id}/devices/{device_id}", Tenant(Action::DeviceDelete), fleet::delete_device; "Delete a device and everything recorded about it (its links, history and alerts)", 204),
        route!(GET "/api/device-groups", Own(Action::DeviceRead), device_sets::list::<device_sets::Groups>; "The tenant's device groups by name, with member counts", query &["tenant_id"], 200 many crate::store::DeviceSet),
        route!(POST "/api/device-groups", Own(Action::DeviceWrite), device_sets::create::<device_sets::Groups>; "Create a device group (name unique in the tenant → 409; colour #rrggbb)", query &["tenant_id"], body device_sets::SetBody, 201 one crate::store::DeviceSet),
        route!(GET "/api/device-groups/{set_id}", Own(Action::DeviceRead), device_sets::get::<device_sets::Groups>; "One device group with its members' ids", query &["tenant_id"], 200 one crate::store::DeviceSet),
        route!(PUT "/api/device-groups/{set_id}", Own(Action::DeviceWrite), device_sets::update::<device_sets::Groups>; "Rename or re-describe a device group (only the fields given; null clears)", query &["tenant_id"], body device_sets::SetBody, 200 one crate::store::DeviceSet),
        route!(DELETE "/api/device-groups/{set_id}", Own(Action::DeviceDelete), device_sets::delete::<device_sets::Groups>; "Delete a device group and the alert rules that target it (their open alerts resolve); its devices stay", query &["tenant_id"], 204),
        route!(POST "/api/device-groups/{set_id}/devices", Own(Action::DeviceWrite), device_sets::add::<device_sets::Groups>; "Add devices of the tenant to a device group (any other id: 422, nothing changes)", query &["tenant_id"], body device_sets::MembersBody, 200 one crate::store::DeviceSet),
        route!(DELETE "/api/device-groups/{set_id}/devices/{device_id}", Own(Action::DeviceWrite), device_sets::remove::<device_sets::Groups>; "Take a device out of a device group", query &["tenant_id"], 204),
        route!(GET "/api/device-tags", Own(Action::DeviceRead), device_sets::list::<device_sets::Tags>; "The tenant's device tags by name, with member counts", query &["tenant_id"], 200 many crate::store::DeviceSet),
        route!(POST "/api/device-tags", Own(Action::DeviceWrite), device_sets::create::<device_sets::Tags>; "Create a device tag (name unique in the tenant → 409; colour #rrggbb)", query &["tenant_id"], body device_sets::SetBody, 201 one crate::store::DeviceSet),
        route!(GET "/api/device-tags/{set_id}", Own(Action::DeviceRead), device_sets::get::<device_sets::Tags>; "One device tag with its members' ids", query &["tenant_id"], 200 one crate::store::DeviceSet),
        route!(PUT "/api/device-tags/{set_id}", Own(Action::DeviceWrite), device_sets::update::<device_sets::Tags>; "Rename or re-describe a device tag (only the fields given; null clears)", query &["tenant_id"], body device_sets::SetBody, 200 one crate::store::DeviceSet),
        route!(DELETE "/api/device-tags/{set_id}", Own(Action::DeviceDelete), device_sets::delete::<device_sets::Tags>; "Delete a device tag; its devices stay", query &["tenant_id"], 204),
        route!(POST "/api/device-tags/{set_id}/devices", Own(Action::DeviceWrite), device_sets::add::<device_sets::Tags>; "Add devices of the tenant to a device tag (any other id: 422, nothing changes)", query &["tenant_id"], body device_sets::MembersBody, 200 one crate::store::DeviceSet),
        route!(DELETE "/api/device-tags/{set_id}/devices/{device_id}", Own(Action::DeviceWrite), device_sets::remove::<device_sets::Tags>; "Take a device out of a device tag", query &["tenant_id"], 204),
        route!(GET "/api/tenants/{tenant_id}/links", Tenant(Action::LinkRead), fleet::list_links; "A tenant's wireless links in (AP, CPE) order (?state=, ?device_id=), paged (?limit=1..1000 with ?offset, X-Total-Count has the full count; or keyset: a full page names the next in X-Next-After, asked for with ?after=, no rows skipped over)", query &["state", "device_id", "limit", "offset", "after"], 200 many WirelessLink),
        route!(GET "/api/tenants/{tenant_id}/sites/{site_id}/links", Tenant(Action::LinkRead), fleet::site_links; "The wireless links with either end at the site", 200 many WirelessLink),
        route!(GET "/api/tenants/{tenant_id}/devices/{device_id}/registrations", Tenant(Action::LinkRead), fleet::registrations; "Each client's latest registration at this AP (last 24 h), resolved to the known device and its name", 200 one fleet::ClientPage),
        route!(GET "/api/tenants/{tenant_id}/devices/{device_id}/unknown-clients", Tenant(Action::LinkRead), fleet::unknown_clients; "Clients of this AP (last 24 h) whose MAC matches no known device", 200 one fleet::ClientPage),
        route!(GET "/api/tenants/{tenant_id}/devices/{device_id}/signal-history", Tenant(Action::LinkRead), fleet::signal_history; "One client's signal as an AP saw it, in buckets (?mac_address= in any common format, ?range=24h|7d|30d, default 7d)", query &["mac_address", "range"], 200 one fleet::SignalHistory),
        route!(GET "/api/tenants/{tenant_id}/devices/{device_id}/links", Tenant(Action::LinkRead), fleet::device_links; "The wireless links of a device (as AP or CPE)", 200 many WirelessLink),
        route!(GET "/api/tenants/{tenant_id}/devices/{device_id}/rf-stats", Tenant(Action::LinkRead), wireless::rf_stats; "The latest RF monitor reading of each of a device's radios, with its clients and their mean signal", 200 one wireless::RfStatPage),
        route!(GET "/api/tenants/{tenant_id}/fleet/wireless-issues", Tenant(Action::WirelessIssuesRead), wireless::tenant_issues; "The tenant's ten worst radios: mean client signal below -70 dBm, CCQ below 60 %, or no clients after having some in the last 24 h (offline devices first)", 200 many wireless::WirelessIssue),
        route!(GET "/api/fleet/wireless-issues", Own(Action::FleetWirelessIssuesRead), wireless::fleet_issues; "The ten worst radios across every tenant, with the tenant's name (super admin)", 200 many wireless::WirelessIssue),
        route!(GET "/api/metrics/devices/{device_id}/health", Own(Action::MetricsRead), metrics::health; "A device's CPU, memory, temperature and uptime in time buckets (?start, ?end, ?bucket_secs; default the last 24 h)", query &["tenant_id", "start", "end", "bucket_secs"], 200 one metrics::HealthSeries),
        route!(GET "/api/metrics/devices/{device_id}/interfaces", Own(Action::MetricsRead), metrics::interfaces; "A device's traffic per interface in time buckets: bytes and mean bits per second (?interface for one)", query &["tenant_id", "start", "end", "bucket_secs", "interface"], 200 one metrics::TrafficSeries),
        route!(GET "/api/metrics/devices/{device_id}/wireless", Own(Action::MetricsRead), metrics::wireless; "A device's radios in time buckets: clients, client signal, noise floor and CCQ (?interface for one)", query &["tenant_id", "start", "end", "bucket_secs", "interface"], 200 one metrics::WirelessSeries),
        route!(GET "/api/tenants/{tenant_id}/agents", Tenant(Action::AgentManage), fleet::list_agents; "A tenant's agents", 200 many Agent),
        route!(POST "/api/tenants/{tenant_id}/agents", Tenant(Action::AgentManage), fleet::create_agent; "Enrol an agent for a site (its token is shown once)", body fleet::NewAgentBody, 201 one fleet::CreatedAgent),
        route!(DELETE "/api/tenants/{tenant_id}/agents/{agent_id}", Tenant(Action::AgentManage), fleet::revoke_agent; "Revoke an agent", 200 one Status),
        route!(GET "/api/vpn", Own(Action::AgentManage), vpn::info; "The WireGuard gateway: its key, endpoint, tunnel network and drop counters", 200 one vpn::GatewayInfo),
        route!(GET "/api/vpn/peers", Own(Action::AgentManage), vpn::list; "The tenant's agents enrolled in the tunnel, with their live state (a super admin names ?tenant_id=)", query &["tenant_id"], 200 many vpn::VpnPeer),
        route!(POST "/api/vpn/peers", Own(Action::AgentManage), vpn::enrol; "Enrol an agent in the tunnel (its address, and its [tunnel] configuration back)", query &["tenant_id"], body vpn::EnrolBody, 201 one vpn::Enrolled),
        route!(DELETE "/api/vpn/peers/{agent_id}", Own(Action::AgentManage), vpn::remove; "Remove an agent from the tunnel (its session and connections end at once)", query &["tenant_id"], 200 one Status),
        route!(GET "/api/agent/devices", Agent, fleet::agent_devices; "The calling agent's site's devices, logins included", 200 many fleet::AgentDevice),
        route!(POST "/api/ingest", Agent, fleet::ingest; "A batch of reports from an agent (JSON, optionally gzip)", 200 one fleet::IngestAnswer),
        route!(GET "/api/users", Own(Action::UserRead), users::list; "Users of the caller's tenant (a super admin: all, or ?tenant_id=)", query &["tenant_id"], 200 many User),
        route!(POST "/api/users", Own(Action::UserWrite), users::create; "Create a user with an SRP salt and verifier", body users::NewUserBody, 201 one User),
        route!(GET "/api/users/{user_id}", Own(Action::UserRead), users::get; "One user", 200 one User),
        route!(PATCH "/api/users/{user_id}", Own(Action::UserWrite), users::update; "Change a user's name, role or active flag", body users::UserPatchBody, 200 one User),
        route!(DELETE "/api/users/{user_id}", Own(Action::UserWrite), users::delete; "Delete a user", 204),
        route!(GET "/api/audit-logs", Own(Action::AuditRead), audit::list; "An audit chain, newest first", query &["tenant_id", "limit", "offset"], 200 many AuditRecord),
        route!(GET "/api/audit-logs/verify", Own(Action::AuditRead), audit::verify; "Re-hash an audit chain from its start", query &["tenant_id"], 200 one ChainCheck),
    ]
}

/// Every route and what it requires.
pub fn route_table() -> Vec<RouteSpec> {
    routes().into_iter().map(|(spec, _)| spec).collect()
}

/// The API router: every route behind the guard (and, in `dev`, the documentation viewers).
pub fn router(state: &AppState) -> Router<AppState> {
    let mut r = if state.dev { viewers::router() } else { Router::new() };
    for (spec, handler) in routes() {
        let mut guarded = handler.layer(axum::middleware::from_fn_with_state(
            (state.clone(), spec.access),
            guard,
        ));
        if spec.access == Access::Agent {
            // Batches are compressed; a day of backlog from a big tower is several megabytes.
            guarded = guarded.layer(axum::extract::DefaultBodyLimit::max(32 << 20));
        } else if spec.path == "/api/plugins" && spec.method == "POST" {
            // A plugin of up to 8 MiB, in base64.
            guarded = guarded.layer(axum::extract::DefaultBodyLimit::max(12 << 20));
        }
        r = r.route(spec.path, guarded);
    }
    r
}

/// Authenticates, rate-limits and authorizes a request according to its route's [`Access`].
async fn guard(
    State((st, access)): State<(AppState, Access)>,
    params: RawPathParams,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let ip = crate::limits::client_ip(peer, req.headers(), &st.trusted_proxies);
    let outcome: Result<(), ApiError> = async {
        if let Access::Public { limited } = access {
            if limited {
                st.auth_limiter.check(ip)?;
            }
            req.extensions_mut().insert(ClientIp(ip));
            return Ok(());
        }
        if access == Access::Agent {
            let agent = authenticate_agent(&st, req.headers(), ip).await?;
            req.extensions_mut().insert(ClientIp(ip));
            req.extensions_mut().insert(agent);
            return Ok(());
        }
        let caller = authenticate(st.store.as_ref(), &st.keys, req.headers(), Some(ip)).await?;
        let scope = match access {
            Access::Public { .. } | Access::Authenticated | Access::Agent => TenantScope(caller.principal.tenant()),
            Access::Own(action) => {
                let own = caller.principal.tenant();
                authorize(&caller.principal, own, action)?;
                TenantScope(own)
            }
            Access::Tenant(action) => {
                let raw = params
                    .iter()
                    .find(|(k, _)| *k == "tenant_id")
                    .map(|(_, v)| v)
                    .ok_or_else(|| ApiError::internal("route without {tenant_id}"))?;
                let tenant: TenantId = raw
                    .parse()
                    .map_err(|_| ApiError::unprocessable(format!("tenant_id: not a UUID: {raw:?}")))?;
                authorize(&caller.principal, Some(tenant), action)?;
                TenantScope(Some(tenant))
            }
        };
        req.extensions_mut().insert(ClientIp(ip));
        req.extensions_mut().insert(caller);
        req.extensions_mut().insert(scope);
        Ok(())
    }
    .await;
    // A user's or API key's write: what it changed is what it reads next (the read cache). An
    // agent's batches are fleet data, shown within the cached answers' lifetime as the brokers' are.
    let writes = !matches!(access, Access::Public { .. } | Access::Agent)
        && !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    match outcome {
        Ok(()) => {
            let scope = req.extensions().get::<TenantScope>().map(|s| s.0);
            let response = next.run(req).await;
            if writes && response.status().is_success() {
                match scope {
                    Some(Some(tenant)) => st.reads.forget(tenant),
                    // A platform-wide caller may have changed any tenant.
                    _ => st.reads.forget_all(),
                }
            }
            response
        }
        Err(e) => e.into_response(),
    }
}

/// An agent's credential: `Authorization: Bearer toda_…`. A user or API key that is otherwise
/// valid is refused with 403; anything else is 401.
async fn authenticate_agent(
    st: &AppState,
    headers: &axum::http::HeaderMap,
    ip: IpAddr,
) -> Result<crate::store::Agent, ApiError> {
    if let Some(token) = crate::auth::bearer_token(headers).filter(|t| t.starts_with(fleet::AGENT_TOKEN_PREFIX)) {
        return st
            .store
            .agent_by_token(&crate::auth::api_key_hash(token))
            .await?
            .ok_or_else(|| ApiError::unauthorized("Invalid or revoked agent credential"));
    }
    authenticate(st.store.as_ref(), &st.keys, headers, Some(ip)).await?;
    Err(ApiError::forbidden("Only agents deliver telemetry"))
}

/// JSON bodies whose rejections are `{"detail"}` errors: 400 for unreadable JSON or a wrong
/// content type, 422 for JSON of the wrong shape.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);

/// Path parameters whose rejections are 422 `{"detail"}` errors.
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct PathParams<T>(pub T);

/// Query parameters whose rejections are 422 `{"detail"}` errors.
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct QueryParams<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => ApiError::unprocessable(e.body_text()),
            JsonRejection::BytesRejection(e) => ApiError::new(e.status(), e.body_text()),
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::unprocessable(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::unprocessable(r.body_text())
    }
}

/// Lower-case hex of at most `max` bytes (and at least `min`), or a 422 naming the field.
pub(crate) fn hex_field(field: &str, value: &str, min: usize, max: usize) -> Result<Vec<u8>, ApiError> {
    let bytes = hex::decode(value.trim()).map_err(|_| ApiError::unprocessable(format!("{field}: not hexadecimal")))?;
    if bytes.len() < min || bytes.len() > max {
        return Err(ApiError::unprocessable(format!(
            "{field}: {min} to {max} bytes expected"
        )));
    }
    Ok(bytes)
}

/// For `Option<Option<T>>` fields: absent stays `None` (by `default`), `null` becomes `Some(None)`.
pub(crate) fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Methods as the table spells them, for tests that walk it.
pub fn method_of(spec: &RouteSpec) -> Method {
    spec.method.parse().unwrap_or(Method::GET)
}

/// The tenant of a tenant-scoped route (the guard has put it in the scope).
pub(super) fn tenant(scope: TenantScope) -> Result<TenantId, ApiError> {
    scope
        .0
        .ok_or_else(|| ApiError::internal("tenant route without a tenant"))
}

/// `?tenant_id=` on routes of the caller's own tenant: a super admin names the tenant there.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TenantQuery {
    /// The tenant (super admins only; others act on their own).
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub(super) tenant_id: Option<TenantId>,
}

/// The tenant an own-tenant route acts on: the caller's, or the one a super admin names.
pub(super) fn own_tenant(scope: TenantScope, asked: Option<TenantId>) -> Result<TenantId, ApiError> {
    tenant(users::own_scope(scope, asked)?)
}

/// A name field: 1 to 255 characters once trimmed.
/// A numbered page: `page` from 1 (default 1), `per_page` 1–200 (default 50); returns (page,
/// per_page, rows to skip).
pub(super) fn numbered_page(page: Option<i64>, per_page: Option<i64>) -> Result<(i64, i64, i64), ApiError> {
    let (page, per_page) = (page.unwrap_or(1), per_page.unwrap_or(50));
    if page < 1 {
        return Err(ApiError::unprocessable("page: 1 or more"));
    }
    if !(1..=200).contains(&per_page) {
        return Err(ApiError::unprocessable("per_page: 1 to 200"));
    }
    Ok((page, per_page, (page - 1).saturating_mul(per_page)))
}

/// A slice of a list: `limit` 1–1000 (none: all), `offset` 0 or more (default 0).
pub(super) fn slice_of(limit: Option<i64>, offset: Option<i64>) -> Result<(Option<i64>, i64), ApiError> {
    if limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(ApiError::unprocessable("limit: 1 to 1000"));
    }
    if offset.is_some_and(|o| o < 0) {
        return Err(ApiError::unprocessable("offset: 0 or more"));
    }
    Ok((limit, offset.unwrap_or(0)))
}

pub(super) fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.trim().len() > 255 {
        return Err(ApiError::unprocessable("name: 1 to 255 characters"));
    }
    Ok(())
}

/// Records a change in the tenant's audit chain once it is done (a failure to record it is
/// logged; the change stands).
pub(super) async fn audit_change(
    st: &AppState,
    caller: &crate::auth::Caller,
    t: TenantId,
    action: &str,
    resource: (&str, String),
    details: serde_json::Value,
) {
    let mut a = caller.audit(Some(t), action, details);
    a.resource_type = Some(resource.0.into());
    a.resource_id = Some(resource.1);
    if let Err(e) = st.store.append_audit(&a, chrono::Utc::now()).await {
        tracing::warn!(action, error = %e, "recording a change in the audit chain failed");
    }
}
