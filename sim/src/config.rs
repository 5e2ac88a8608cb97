//! What the simulator serves: providers, their users and regions, and the
//! faults each region starts with. Read from TOML; every field has a default
//! so a config file only says what differs.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::faults::Faults;

/// The whole simulator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Address every port listens on.
    pub listen: IpAddr,
    /// Port of the `/_sim/` control API; 0 picks a free one.
    pub control_port: u16,
    /// The providers.
    pub providers: Vec<ProviderConfig>,
}

impl Default for SimConfig {
    /// Three providers with two regions each, as `oms sim` serves.
    fn default() -> Self {
        SimConfig {
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            control_port: 0,
            providers: ["alpha", "beta", "gamma"]
                .iter()
                .map(|name| ProviderConfig::named(name))
                .collect(),
        }
    }
}

impl SimConfig {
    /// Parses a TOML document.
    pub fn from_toml(text: &str) -> Result<SimConfig, toml::de::Error> {
        toml::from_str(text)
    }
}

/// One OpenStack cloud with its own Keystone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// Provider name, also the prefix of its region names.
    pub name: String,
    /// Keystone port; 0 picks a free one.
    pub port: u16,
    /// Whether Keystone v2.0 answers (older clouds); otherwise it is a
    /// 404 HTML page, as on current Keystone.
    pub identity_v2: bool,
    /// Token lifetime in seconds (real Keystone: 3600); 0 makes every
    /// token invalid at once, so every service call is a 401.
    pub token_lifetime_secs: f64,
    /// Users, each with its own project.
    pub users: Vec<UserConfig>,
    /// Application credentials.
    pub application_credentials: Vec<AppCredentialConfig>,
    /// Regions, each with a compute and image endpoint.
    pub regions: Vec<RegionConfig>,
    /// Faults of Keystone itself (outage, latency, error rate).
    pub keystone_faults: Faults,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig::named("sim")
    }
}

impl ProviderConfig {
    /// A provider with the demo and admin users and regions
    /// `<name>-1` and `<name>-2`.
    pub fn named(name: &str) -> ProviderConfig {
        ProviderConfig {
            name: name.to_owned(),
            port: 0,
            identity_v2: false,
            token_lifetime_secs: 3600.0,
            users: vec![
                UserConfig::default(),
                UserConfig {
                    name: "admin".into(),
                    project: "admin".into(),
                    admin: true,
                    ..UserConfig::default()
                },
            ],
            application_credentials: Vec::new(),
            regions: vec![
                RegionConfig::named(&format!("{name}-1")),
                RegionConfig::named(&format!("{name}-2")),
            ],
            keystone_faults: Faults::default(),
        }
    }
}

/// A user and the project its tokens are scoped to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UserConfig {
    /// User name.
    pub name: String,
    /// Password.
    pub password: String,
    /// Domain name of user and project (id is the lowercase name).
    pub domain: String,
    /// Project name.
    pub project: String,
    /// Admin role: may set quotas and filter all tenants.
    pub admin: bool,
}

impl Default for UserConfig {
    fn default() -> Self {
        UserConfig {
            name: "demo".into(),
            password: "secret".into(),
            domain: "Default".into(),
            project: "demo".into(),
            admin: false,
        }
    }
}

/// An application credential of a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppCredentialConfig {
    /// Credential id.
    pub id: String,
    /// Credential name.
    pub name: String,
    /// Its secret.
    pub secret: String,
    /// Name of the owning user.
    pub user: String,
}

/// One region: its quota, flavors, images, timings and faults.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RegionConfig {
    /// Region id as it appears in the catalog.
    pub name: String,
    /// Port of the region's compute and image endpoints; 0 picks one.
    pub port: u16,
    /// Per-project quota.
    pub quota: QuotaConfig,
    /// Seconds from create to ACTIVE.
    pub build_secs: f64,
    /// Seconds a deleted server still shows with `task_state: deleting`.
    pub delete_secs: f64,
    /// Newest compute microversion offered.
    pub max_microversion: String,
    /// Flavors.
    pub flavors: Vec<FlavorConfig>,
    /// Active images by name.
    pub images: Vec<String>,
    /// Faults the region starts with.
    pub faults: Faults,
}

impl Default for RegionConfig {
    fn default() -> Self {
        RegionConfig::named("RegionOne")
    }
}

impl RegionConfig {
    /// A region with public-provider defaults: 20 instances, four flavors,
    /// a few common images, builds of one second.
    pub fn named(name: &str) -> RegionConfig {
        RegionConfig {
            name: name.to_owned(),
            port: 0,
            quota: QuotaConfig::default(),
            build_secs: 1.0,
            delete_secs: 0.5,
            max_microversion: "2.104".into(),
            flavors: FlavorConfig::defaults(),
            images: vec![
                "cirros-fake".into(),
                "debian-12".into(),
                "ubuntu-24.04".into(),
            ],
            faults: Faults::default(),
        }
    }
}

/// Per-project limits, enforced as Nova does.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// Instances.
    pub instances: i64,
    /// vCPUs.
    pub cores: i64,
    /// RAM in MiB.
    pub ram: i64,
    /// Key pairs per user.
    pub key_pairs: i64,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            instances: 20,
            cores: 80,
            ram: 204_800,
            key_pairs: 100,
        }
    }
}

/// A flavor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FlavorConfig {
    /// Flavor id.
    pub id: String,
    /// Flavor name.
    pub name: String,
    /// vCPUs.
    pub vcpus: i64,
    /// RAM, MiB.
    pub ram: i64,
    /// Disk, GB.
    pub disk: i64,
}

impl FlavorConfig {
    fn defaults() -> Vec<FlavorConfig> {
        [
            ("1", "m1.tiny", 1, 512, 1),
            ("2", "m1.small", 1, 2048, 20),
            ("3", "m1.medium", 2, 4096, 40),
            ("4", "m1.large", 4, 8192, 80),
        ]
        .into_iter()
        .map(|(id, name, vcpus, ram, disk)| FlavorConfig {
            id: id.into(),
            name: name.into(),
            vcpus,
            ram,
            disk,
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_file_fills_in_defaults() {
        let config = SimConfig::from_toml(
            r#"
            [[providers]]
            name = "solo"
            [[providers.regions]]
            name = "solo-east"
            build_secs = 3.0
            [providers.regions.quota]
            instances = 5
            [providers.regions.faults]
            build_error_rate = 0.3
            "#,
        )
        .unwrap();
        let provider = &config.providers[0];
        assert_eq!(provider.users[0].name, "demo");
        assert_eq!(provider.regions[0].quota.instances, 5);
        assert_eq!(provider.regions[0].quota.cores, 80);
        assert_eq!(provider.regions[0].faults.build_error_rate, 0.3);
        assert_eq!(provider.regions[0].flavors.len(), 4);
    }

    #[test]
    fn the_documented_example_parses() {
        let config = SimConfig::from_toml(include_str!("../sim.example.toml")).unwrap();
        assert_eq!(config.providers[0].regions.len(), 2);
        assert_eq!(config.providers[0].regions[0].flavors.len(), 2);
        assert_eq!(config.providers[0].regions[1].flavors.len(), 4);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(SimConfig::from_toml("[[providers]]\nnmae = \"x\"").is_err());
    }

    #[test]
    fn default_is_three_providers_of_two_regions() {
        let config = SimConfig::default();
        assert_eq!(config.providers.len(), 3);
        assert!(config.providers.iter().all(|p| p.regions.len() == 2));
    }
}
