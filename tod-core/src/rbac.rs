//! Who may do what: roles, API-key scopes, and one role × scope × action matrix.
//!
//! Every route of the server names an [`Action`] and calls [`authorize`]; there are no ad-hoc role
//! comparisons anywhere else. The matrix follows the RBAC columns of the API reference and fixes
//! the original's inconsistencies: API keys act at operator level but only within their scopes,
//! on every group alike; reads of the wireless groups need a read scope; no one can grant a role
//! above their own.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::{ApiKeyId, TenantId, UserId};

/// User roles, in increasing privilege.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read-only access within a tenant.
    Viewer,
    /// Device operations and configuration within a tenant.
    Operator,
    /// Full access within a tenant (the original calls it `tenant_admin`).
    #[serde(alias = "tenant_admin")]
    Admin,
    /// Platform-wide access; belongs to no tenant.
    SuperAdmin,
}

impl Role {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
            Self::SuperAdmin => "super_admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            "admin" | "tenant_admin" => Ok(Self::Admin),
            "super_admin" => Ok(Self::SuperAdmin),
            _ => Err(UnknownName {
                kind: "role",
                name: s.chars().take(64).collect(),
            }),
        }
    }
}

/// A name that is not a known role or scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}")]
pub struct UnknownName {
    /// `role` or `scope`.
    pub kind: &'static str,
    /// The rejected name.
    pub name: String,
}

/// API-key scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Read devices, sites, sectors, links, registrations, signal history, metrics.
    #[serde(rename = "devices:read")]
    DevicesRead,
    /// Create/update devices, sites, sectors and assignments.
    #[serde(rename = "devices:write")]
    DevicesWrite,
    /// Read config backups and schedules.
    #[serde(rename = "config:read")]
    ConfigRead,
    /// Trigger backups, restore, change schedules.
    #[serde(rename = "config:write")]
    ConfigWrite,
    /// Read alert rules, events and site alerts.
    #[serde(rename = "alerts:read")]
    AlertsRead,
    /// Write alert rules, acknowledge/resolve/silence alerts.
    #[serde(rename = "alerts:write")]
    AlertsWrite,
    /// Firmware upgrades.
    #[serde(rename = "firmware:write")]
    FirmwareWrite,
}

impl Scope {
    /// Every scope, in wire-name order.
    pub const ALL: [Scope; 7] = [
        Scope::DevicesRead,
        Scope::DevicesWrite,
        Scope::ConfigRead,
        Scope::ConfigWrite,
        Scope::AlertsRead,
        Scope::AlertsWrite,
        Scope::FirmwareWrite,
    ];

    /// The wire name (`devices:read`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::DevicesRead => "devices:read",
            Self::DevicesWrite => "devices:write",
            Self::ConfigRead => "config:read",
            Self::ConfigWrite => "config:write",
            Self::AlertsRead => "alerts:read",
            Self::AlertsWrite => "alerts:write",
            Self::FirmwareWrite => "firmware:write",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or_else(|| UnknownName {
                kind: "scope",
                name: s.chars().take(64).collect(),
            })
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Principal {
    /// A logged-in user.
    User {
        /// The user.
        id: UserId,
        /// Their role.
        role: Role,
        /// Their tenant; `None` only for super admins.
        tenant: Option<TenantId>,
    },
    /// An API key: operator level, limited to its scopes, bound to one tenant.
    ApiKey {
        /// The key.
        id: ApiKeyId,
        /// The tenant the key belongs to.
        tenant: TenantId,
        /// What the key may touch.
        scopes: BTreeSet<Scope>,
    },
}

impl Principal {
    /// The role the principal acts with (API keys act as operators).
    pub fn effective_role(&self) -> Role {
        match self {
            Self::User { role, .. } => *role,
            Self::ApiKey { .. } => Role::Operator,
        }
    }

    /// The principal's own tenant, if it has one.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Self::User { tenant, .. } => *tenant,
            Self::ApiKey { tenant, .. } => Some(*tenant),
        }
    }
}

/// Declares [`Action`] and [`Action::ALL`] from one list, so the list of every action cannot
/// drift from the enum.
macro_rules! actions {
    ($($(#[$meta:meta])* $name:ident,)*) => {
        /// Everything the API lets a caller do, one variant per distinct permission.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[allow(missing_docs)]
        pub enum Action {
            $($(#[$meta])* $name,)*
        }

        impl Action {
            /// Every action (for matrix tests that must cover all of them).
            pub const ALL: [Action; [$(stringify!($name)),*].len()] = [$(Action::$name),*];
        }
    };
}

actions! {
    // Fleet: devices, groups, tags, sites, sectors and assignments.
    DeviceRead,
    DeviceWrite,
    DeviceDelete,
    SiteRead,
    SiteWrite,
    SiteDelete,
    SectorRead,
    SectorWrite,
    SectorDelete,
    // Wireless read models.
    LinkRead,
    SignalHistoryRead,
    MetricsRead,
    WirelessIssuesRead,
    /// The cross-tenant fleet view (`GET /api/fleet/wireless-issues`).
    FleetWirelessIssuesRead,
    // Device alerts and site alerts.
    AlertRead,
    AlertRuleWrite,
    AlertRuleDelete,
    AlertEventWrite,
    SiteAlertRead,
    SiteAlertRuleWrite,
    SiteAlertEventResolve,
    NotificationChannelWrite,
    MaintenanceRead,
    MaintenanceWrite,
    // Configuration.
    ConfigRead,
    ConfigWrite,
    FirmwareWrite,
    RemoteAccess,
    // Plugins.
    PluginRead,
    PluginWrite,
    // Administration.
    AuditRead,
    UserRead,
    UserWrite,
    ApiKeyManage,
    AgentManage,
    VpnManage,
    TenantRead,
    TenantManage,
}

/// What an action requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// The lowest role allowed.
    pub min_role: Role,
    /// The scope an API key needs; `None` means API keys may not do this at all.
    pub api_key_scope: Option<Scope>,
}

const fn req(min_role: Role, api_key_scope: Option<Scope>) -> Requirement {
    Requirement {
        min_role,
        api_key_scope,
    }
}

impl Action {
    /// The matrix. One line per action; this is the whole policy.
    pub const fn requirement(self) -> Requirement {
        use Role::*;
        use Scope::*;
        match self {
            Self::DeviceRead | Self::SiteRead | Self::SectorRead => req(Viewer, Some(DevicesRead)),
            Self::LinkRead | Self::SignalHistoryRead | Self::MetricsRead => req(Viewer, Some(DevicesRead)),
            Self::WirelessIssuesRead => req(Viewer, Some(DevicesRead)),
            Self::DeviceWrite | Self::SiteWrite | Self::SectorWrite => req(Operator, Some(DevicesWrite)),
            Self::DeviceDelete | Self::SiteDelete | Self::SectorDelete => req(Admin, None),
            Self::FleetWirelessIssuesRead => req(SuperAdmin, None),
            Self::AlertRead | Self::SiteAlertRead => req(Viewer, Some(AlertsRead)),
            Self::AlertRuleWrite | Self::AlertEventWrite => req(Operator, Some(AlertsWrite)),
            Self::SiteAlertRuleWrite | Self::SiteAlertEventResolve => req(Operator, Some(AlertsWrite)),
            Self::AlertRuleDelete => req(Operator, Some(AlertsWrite)),
            Self::NotificationChannelWrite => req(Admin, None),
            Self::MaintenanceRead => req(Operator, Some(AlertsRead)),
            Self::MaintenanceWrite => req(Operator, Some(AlertsWrite)),
            Self::ConfigRead => req(Viewer, Some(ConfigRead)),
            Self::ConfigWrite => req(Operator, Some(ConfigWrite)),
            Self::FirmwareWrite => req(Operator, Some(FirmwareWrite)),
            Self::RemoteAccess => req(Operator, None),
            Self::PluginRead => req(Viewer, Some(AlertsRead)),
            Self::PluginWrite => req(Admin, None),
            Self::AuditRead | Self::UserRead | Self::UserWrite | Self::ApiKeyManage => req(Admin, None),
            Self::AgentManage | Self::VpnManage => req(Admin, None),
            Self::TenantRead => req(Viewer, None),
            Self::TenantManage => req(SuperAdmin, None),
        }
    }
}

/// Why a request was refused. The messages are what the API returns as `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The principal does not belong to the tenant it addressed.
    #[error("Access denied: you do not belong to this tenant.")]
    WrongTenant,
    /// The role is below the action's minimum.
    #[error("Access denied. {} or higher role required.", role_title(*required))]
    RoleTooLow {
        /// The minimum role.
        required: Role,
    },
    /// API keys may never perform this action.
    #[error("Access denied. API keys cannot perform this action.")]
    ApiKeyNotAllowed,
    /// The API key lacks the scope.
    #[error("API key missing required scope: {0}")]
    MissingScope(Scope),
    /// A role may not be granted by this principal.
    #[error("Access denied. You cannot grant the role {0}.")]
    CannotGrant(Role),
}

fn role_title(r: Role) -> &'static str {
    match r {
        Role::Viewer => "Viewer",
        Role::Operator => "Operator",
        Role::Admin => "Tenant admin",
        Role::SuperAdmin => "Super admin",
    }
}

/// Decides whether `principal` may perform `action` on `tenant`'s data.
///
/// Pass `tenant = None` for platform-level actions that address no tenant (tenant management,
/// the cross-tenant fleet view).
pub fn authorize(principal: &Principal, tenant: Option<TenantId>, action: Action) -> Result<(), Denied> {
    let need = action.requirement();
    match principal {
        Principal::User {
            role: Role::SuperAdmin, ..
        } => Ok(()),
        Principal::User { role, tenant: own, .. } => {
            if tenant.is_none() || *own != tenant {
                // Tenant users have no platform-level rights; super-admin-only actions report the role.
                return Err(if need.min_role == Role::SuperAdmin {
                    Denied::RoleTooLow {
                        required: Role::SuperAdmin,
                    }
                } else {
                    Denied::WrongTenant
                });
            }
            if *role < need.min_role {
                return Err(Denied::RoleTooLow {
                    required: need.min_role,
                });
            }
            Ok(())
        }
        Principal::ApiKey {
            tenant: own, scopes, ..
        } => {
            if tenant != Some(*own) {
                return Err(if need.min_role == Role::SuperAdmin {
                    Denied::RoleTooLow {
                        required: Role::SuperAdmin,
                    }
                } else {
                    Denied::WrongTenant
                });
            }
            let Some(scope) = need.api_key_scope else {
                return Err(Denied::ApiKeyNotAllowed);
            };
            if Role::Operator < need.min_role {
                return Err(Denied::RoleTooLow {
                    required: need.min_role,
                });
            }
            if !scopes.contains(&scope) {
                return Err(Denied::MissingScope(scope));
            }
            Ok(())
        }
    }
}

/// Decides whether `actor` may give a user in `target_tenant`, currently holding `current`
/// (`None` for a new user), the role `new_role`.
///
/// Rules: user management is an admin action; nobody grants a role above their own; only a
/// super admin creates or changes super admins (and super admins belong to no tenant); an admin
/// cannot change an account that outranks them.
pub fn can_assign_role(
    actor: &Principal,
    target_tenant: Option<TenantId>,
    current: Option<Role>,
    new_role: Role,
) -> Result<(), Denied> {
    if new_role == Role::SuperAdmin || current == Some(Role::SuperAdmin) {
        return match actor {
            Principal::User {
                role: Role::SuperAdmin, ..
            } if target_tenant.is_none() => Ok(()),
            Principal::User {
                role: Role::SuperAdmin, ..
            } => Err(Denied::CannotGrant(new_role)),
            _ => Err(Denied::CannotGrant(Role::SuperAdmin)),
        };
    }
    let tenant = target_tenant.ok_or(Denied::CannotGrant(new_role))?;
    authorize(actor, Some(tenant), Action::UserWrite)?;
    let actor_role = actor.effective_role();
    if new_role > actor_role {
        return Err(Denied::CannotGrant(new_role));
    }
    if let Some(cur) = current
        && cur > actor_role
    {
        return Err(Denied::CannotGrant(new_role));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: TenantId = TenantId::from_u128(1);
    const T2: TenantId = TenantId::from_u128(2);

    fn user(role: Role, tenant: Option<TenantId>) -> Principal {
        Principal::User {
            id: UserId::from_u128(9),
            role,
            tenant,
        }
    }

    fn key(scopes: &[Scope]) -> Principal {
        Principal::ApiKey {
            id: ApiKeyId::from_u128(3),
            tenant: T1,
            scopes: scopes.iter().copied().collect(),
        }
    }

    /// The RBAC columns of the API reference, for the groups it lists.
    #[test]
    fn matrix_matches_the_api_reference_columns() {
        use Action::*;
        for (action, min) in [
            (SiteRead, Role::Viewer),
            (SiteWrite, Role::Operator),
            (SiteDelete, Role::Admin),
            (SectorRead, Role::Viewer),
            (SectorWrite, Role::Operator),
            (SectorDelete, Role::Admin),
            (LinkRead, Role::Viewer),
            (SignalHistoryRead, Role::Viewer),
            (SiteAlertRead, Role::Viewer),
            (SiteAlertRuleWrite, Role::Operator),
            (SiteAlertEventResolve, Role::Operator),
            (ConfigRead, Role::Viewer),
            (ConfigWrite, Role::Operator),
            (RemoteAccess, Role::Operator),
            (TenantManage, Role::SuperAdmin),
            (FleetWirelessIssuesRead, Role::SuperAdmin),
        ] {
            assert_eq!(action.requirement().min_role, min, "{action:?}");
            for role in [Role::Viewer, Role::Operator, Role::Admin] {
                let allowed = authorize(&user(role, Some(T1)), Some(T1), action).is_ok();
                assert_eq!(allowed, role >= min, "{role:?} {action:?}");
            }
            assert!(authorize(&user(Role::SuperAdmin, None), Some(T1), action).is_ok());
        }
    }

    #[test]
    fn tenant_users_cannot_reach_another_tenant() {
        let admin = user(Role::Admin, Some(T1));
        assert_eq!(authorize(&admin, Some(T2), Action::SiteRead), Err(Denied::WrongTenant));
        assert_eq!(
            authorize(&admin, None, Action::FleetWirelessIssuesRead),
            Err(Denied::RoleTooLow {
                required: Role::SuperAdmin
            })
        );
        assert_eq!(
            authorize(&key(&Scope::ALL), Some(T2), Action::SiteRead),
            Err(Denied::WrongTenant)
        );
    }

    #[test]
    fn api_keys_act_as_operators_within_their_scopes() {
        let k = key(&[Scope::DevicesRead, Scope::DevicesWrite]);
        assert_eq!(authorize(&k, Some(T1), Action::SiteWrite), Ok(()));
        assert_eq!(authorize(&k, Some(T1), Action::LinkRead), Ok(()));
        assert_eq!(
            authorize(&k, Some(T1), Action::SiteAlertRuleWrite),
            Err(Denied::MissingScope(Scope::AlertsWrite))
        );
        assert_eq!(
            authorize(&k, Some(T1), Action::SiteDelete),
            Err(Denied::ApiKeyNotAllowed)
        );
        assert_eq!(
            authorize(&k, Some(T1), Action::RemoteAccess),
            Err(Denied::ApiKeyNotAllowed)
        );
        assert_eq!(
            authorize(&k, Some(T1), Action::ApiKeyManage),
            Err(Denied::ApiKeyNotAllowed)
        );
        let reader = key(&[Scope::AlertsRead]);
        assert_eq!(
            authorize(&reader, Some(T1), Action::SiteRead),
            Err(Denied::MissingScope(Scope::DevicesRead))
        );
    }

    #[test]
    fn every_action_admits_super_admins_and_denies_api_keys_above_operator() {
        let all_scopes = key(&Scope::ALL);
        for action in Action::ALL {
            let need = action.requirement();
            assert!(authorize(&user(Role::SuperAdmin, None), Some(T1), action).is_ok());
            if need.min_role > Role::Operator {
                assert!(need.api_key_scope.is_none(), "{action:?} admits keys above operator");
                assert!(authorize(&all_scopes, Some(T1), action).is_err());
            }
        }
    }

    #[test]
    fn nobody_grants_a_role_above_their_own() {
        let admin = user(Role::Admin, Some(T1));
        // The original let a tenant admin promote anyone, itself included, to super_admin.
        assert_eq!(
            can_assign_role(&admin, Some(T1), Some(Role::Admin), Role::SuperAdmin),
            Err(Denied::CannotGrant(Role::SuperAdmin))
        );
        assert_eq!(
            can_assign_role(&admin, Some(T1), Some(Role::Viewer), Role::Admin),
            Ok(())
        );
        assert_eq!(can_assign_role(&admin, Some(T1), None, Role::Operator), Ok(()));
        assert_eq!(
            can_assign_role(&admin, Some(T2), None, Role::Viewer),
            Err(Denied::WrongTenant)
        );
        let op = user(Role::Operator, Some(T1));
        assert_eq!(
            can_assign_role(&op, Some(T1), None, Role::Viewer),
            Err(Denied::RoleTooLow { required: Role::Admin })
        );
        assert!(can_assign_role(&key(&Scope::ALL), Some(T1), None, Role::Viewer).is_err());
        let sa = user(Role::SuperAdmin, None);
        assert_eq!(can_assign_role(&sa, None, None, Role::SuperAdmin), Ok(()));
        assert_eq!(
            can_assign_role(&sa, Some(T1), None, Role::SuperAdmin),
            Err(Denied::CannotGrant(Role::SuperAdmin))
        );
        assert_eq!(can_assign_role(&sa, Some(T1), None, Role::Admin), Ok(()));
        assert_eq!(
            can_assign_role(&admin, None, Some(Role::SuperAdmin), Role::Viewer),
            Err(Denied::CannotGrant(Role::SuperAdmin))
        );
    }

    #[test]
    fn names_parse_and_legacy_tenant_admin_is_accepted() {
        assert_eq!("tenant_admin".parse::<Role>(), Ok(Role::Admin));
        assert_eq!(serde_json::from_str::<Role>("\"tenant_admin\"").unwrap(), Role::Admin);
        assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), "\"admin\"");
        for s in Scope::ALL {
            assert_eq!(s.as_str().parse::<Scope>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
        }
        assert!("devices:delete".parse::<Scope>().is_err());
        assert!(Role::Viewer < Role::Operator && Role::Admin < Role::SuperAdmin);
    }

    #[test]
    fn denial_messages_match_the_reference_wording() {
        assert_eq!(
            Denied::RoleTooLow {
                required: Role::Operator
            }
            .to_string(),
            "Access denied. Operator or higher role required."
        );
        assert_eq!(
            Denied::RoleTooLow { required: Role::Admin }.to_string(),
            "Access denied. Tenant admin or higher role required."
        );
        assert_eq!(
            Denied::MissingScope(Scope::DevicesWrite).to_string(),
            "API key missing required scope: devices:write"
        );
    }
}
