//! Id newtypes and the device status vocabulary shared across the domain.
//!
//! Ids are UUIDs assigned by whoever stores the entity (the server's database); tod-core never
//! generates them, so it needs no randomness.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Wraps a UUID.
            pub const fn new(id: Uuid) -> Self {
                Self(id)
            }
            /// Builds an id from a number; handy for fixtures, benches and simulations.
            pub const fn from_u128(n: u128) -> Self {
                Self(Uuid::from_u128(n))
            }
            /// The wrapped UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(/// A tenant (one ISP or customer organisation).
    TenantId);
id_type!(/// A site (tower, POP).
    SiteId);
id_type!(/// A sector (one radio's coverage at a site).
    SectorId);
id_type!(/// A managed device (router, access point, CPE).
    DeviceId);
id_type!(/// A device group.
    GroupId);
id_type!(/// An alert rule (device rule, site rule or plugin rule).
    RuleId);
id_type!(/// A wireless link row.
    LinkId);
id_type!(/// A user account.
    UserId);
id_type!(/// An API key.
    ApiKeyId);
id_type!(/// A tower agent (`tod-agent` instance).
    AgentId);
id_type!(/// A maintenance window.
    WindowId);

/// What the server knows about a device's reachability.
///
/// `Unreachable` is distinct from `Offline`: it means the agent that polls the device has gone
/// silent, so nothing is known about the device itself. Offline-based rules do not count it, which
/// is what turns an agent outage into one incident instead of one alert per device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// Never polled yet.
    #[default]
    Unknown,
    /// The last poll succeeded.
    Online,
    /// The agent polled and the device did not answer.
    Offline,
    /// The agent responsible for the device is not reporting.
    Unreachable,
}

impl DeviceStatus {
    /// The wire name (`online`, `offline`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Unreachable => "unreachable",
        }
    }

    /// The status named by a wire name; any other name (a stored status this type does not
    /// model, such as `auth_failed`) is `Unknown`, which no offline rule counts.
    pub fn from_name(name: &str) -> Self {
        match name {
            "online" => Self::Online,
            "offline" => Self::Offline,
            "unreachable" => Self::Unreachable,
            _ => Self::Unknown,
        }
    }
}

impl fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_status_names_round_trip_and_unknown_names_are_unknown() {
        for s in [
            DeviceStatus::Unknown,
            DeviceStatus::Online,
            DeviceStatus::Offline,
            DeviceStatus::Unreachable,
        ] {
            assert_eq!(DeviceStatus::from_name(s.as_str()), s);
        }
        assert_eq!(DeviceStatus::from_name("auth_failed"), DeviceStatus::Unknown);
    }

    #[test]
    fn ids_round_trip_through_strings_and_json() {
        let id = DeviceId::from_u128(42);
        let text = id.to_string();
        assert_eq!(text.parse::<DeviceId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
        assert!("not-a-uuid".parse::<DeviceId>().is_err());
    }

    #[test]
    fn device_status_uses_snake_case_on_the_wire() {
        assert_eq!(
            serde_json::to_string(&DeviceStatus::Unreachable).unwrap(),
            "\"unreachable\""
        );
        assert_eq!(DeviceStatus::default(), DeviceStatus::Unknown);
    }
}
