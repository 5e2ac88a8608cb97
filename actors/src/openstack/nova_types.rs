//! What the client reads from and sends to Nova; only the fields we use.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Deserialize;

/// A server as Nova reports it (show or detail list).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Server {
    /// Nova's server id (unique within the region only).
    pub id: String,
    /// The name given at create.
    #[serde(default)]
    pub name: String,
    /// `BUILD`, `ACTIVE`, `ERROR`, `DELETED`, ...
    #[serde(default)]
    pub status: String,
    /// Addresses by network name.
    #[serde(default)]
    pub addresses: BTreeMap<String, Vec<Address>>,
    /// Metadata as sent at create.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Tags (microversion 2.26 and newer).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Why a server is in ERROR.
    #[serde(default)]
    pub fault: Option<Fault>,
    /// `deleting` right after a DELETE, `spawning` while building, ...
    #[serde(rename = "OS-EXT-STS:task_state", default)]
    pub task_state: Option<String>,
    /// Key pair name given at create.
    #[serde(default)]
    pub key_name: Option<String>,
}

impl Server {
    /// The first IPv4 address, else the first address of any kind.
    pub fn primary_address(&self) -> Option<&str> {
        let all = || self.addresses.values().flatten();
        all()
            .find(|a| a.version == 4)
            .or_else(|| all().next())
            .map(|a| a.addr.as_str())
    }
}

/// One address of a server.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Address {
    /// The IP address.
    pub addr: String,
    /// 4 or 6.
    #[serde(default)]
    pub version: u8,
    /// `fixed` or `floating`.
    #[serde(rename = "OS-EXT-IPS:type", default)]
    pub kind: Option<String>,
}

/// Nova's explanation of a server in ERROR.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Fault {
    /// HTTP-like code (500 for "No valid host was found").
    #[serde(default)]
    pub code: Option<u16>,
    /// The message.
    #[serde(default)]
    pub message: String,
}

/// A flavor from `GET /flavors/detail`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Flavor {
    /// Flavor id (a string, often numeric).
    pub id: String,
    /// Flavor name.
    pub name: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// RAM in MiB.
    pub ram: u64,
    /// Root disk in GB.
    pub disk: u64,
    /// Ephemeral disk in GB.
    #[serde(rename = "OS-FLV-EXT-DATA:ephemeral", default)]
    pub ephemeral: u64,
    /// Whether every project can use it.
    #[serde(rename = "os-flavor-access:is_public", default = "yes")]
    pub is_public: bool,
}

fn yes() -> bool {
    true
}

/// A key pair. `private_key` is present only when Nova generated it.
#[derive(Debug, Clone, Deserialize)]
pub struct Keypair {
    /// The key pair's name (unique per user and region).
    pub name: String,
    /// OpenSSH public key.
    #[serde(default)]
    pub public_key: String,
    /// MD5 fingerprint as Nova shows it.
    #[serde(default)]
    pub fingerprint: String,
    /// The generated private key; redacted in `Debug`.
    #[serde(default)]
    pub private_key: Option<SecretString>,
}

/// The absolute limits and usage Nova reports for the project.
///
/// A limit of -1 means unlimited.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AbsoluteLimits {
    /// Instances allowed.
    #[serde(default)]
    pub max_total_instances: i64,
    /// vCPUs allowed.
    #[serde(default)]
    pub max_total_cores: i64,
    /// RAM allowed, MiB.
    #[serde(rename = "maxTotalRAMSize", default)]
    pub max_total_ram_size: i64,
    /// Key pairs allowed.
    #[serde(default)]
    pub max_total_keypairs: i64,
    /// Instances in use.
    #[serde(default)]
    pub total_instances_used: i64,
    /// vCPUs in use.
    #[serde(default)]
    pub total_cores_used: i64,
    /// RAM in use, MiB.
    #[serde(rename = "totalRAMUsed", default)]
    pub total_ram_used: i64,
}

/// The networks a new server attaches to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Networks {
    /// Let Nova pick (works when the project has exactly one usable network).
    #[default]
    Auto,
    /// No network at all.
    None,
    /// These network UUIDs.
    Uuids(Vec<String>),
}

/// What to create. `user_data` is raw bytes; the client encodes it.
#[derive(Debug, Clone, Default)]
pub struct CreateServer {
    /// Server name.
    pub name: String,
    /// Flavor id.
    pub flavor_ref: String,
    /// Image id.
    pub image_ref: String,
    /// Key pair to inject (must exist in this region).
    pub key_name: Option<String>,
    /// cloud-init user data, unencoded.
    pub user_data: Option<Vec<u8>>,
    /// Server metadata.
    pub metadata: BTreeMap<String, String>,
    /// Networks to attach.
    pub networks: Networks,
    /// Tags, sent in the create call when the microversion allows it.
    pub tags: Vec<String>,
}

/// Filters for `GET /servers/detail`; Nova ignores metadata filters, so
/// finding our servers goes by tag or name.
#[derive(Debug, Clone, Default)]
pub struct ServerFilter {
    /// Servers carrying all of these tags.
    pub tags: Vec<String>,
    /// Name regular expression, as Nova understands it.
    pub name: Option<String>,
    /// Status (`ACTIVE`, `ERROR`, ...).
    pub status: Option<String>,
    /// Page size; Nova's own maximum applies when unset.
    pub limit: Option<u32>,
    /// Only servers changed (`updated`) at or after this time, deleted
    /// ones included (status `DELETED`).
    pub changes_since: Option<chrono::DateTime<chrono::Utc>>,
}

/// A listing and the provider's clock when it answered (its `Date`
/// header), from which later `changes-since` queries are made.
#[derive(Debug, Clone, Default)]
pub struct ServerListing {
    /// The servers, every page.
    pub servers: Vec<Server>,
    /// The `Date` of the first page, if the provider sent one.
    pub provider_date: Option<chrono::DateTime<chrono::Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_servers_flavors_and_limits_parse() {
        let servers: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/022-servers-detail.json"))
                .unwrap();
        let server: Server = serde_json::from_value(servers["servers"][0].clone()).unwrap();
        assert_eq!(server.status, "ACTIVE");
        assert_eq!(server.primary_address(), Some("192.0.2.68"));
        assert_eq!(server.task_state, None);

        let old: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/018-server-v2.1.json"))
                .unwrap();
        let old: Server = serde_json::from_value(old["server"].clone()).unwrap();
        assert!(old.tags.is_empty());

        let flavors: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/007-flavors.json")).unwrap();
        let flavors: Vec<Flavor> = serde_json::from_value(flavors["flavors"].clone()).unwrap();
        assert_eq!(flavors[0].name, "m1.tiny");
        assert_eq!(
            (flavors[1].vcpus, flavors[1].ram, flavors[1].disk),
            (1, 2048, 20)
        );

        let limits: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/027-limits.json")).unwrap();
        let limits: AbsoluteLimits =
            serde_json::from_value(limits["limits"]["absolute"].clone()).unwrap();
        assert_eq!(limits.max_total_instances, 10);
        assert_eq!(limits.total_ram_used, 512);
        assert_eq!(limits.max_total_ram_size, 51200);
    }

    #[test]
    fn generated_private_key_is_redacted_in_debug() {
        let body: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/010-keypair-generate.json"
        ))
        .unwrap();
        let keypair: Keypair = serde_json::from_value(body["keypair"].clone()).unwrap();
        assert!(keypair.private_key.is_some());
        assert!(!format!("{keypair:?}").contains("PRIVATE KEY"));
    }
}
