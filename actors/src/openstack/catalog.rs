//! The service catalog a token comes with, in Keystone v3 or v2.0 shape.
//!
//! An account-region is a region of this catalog with a compute endpoint, so
//! the catalog is where placement's units come from.

use serde::{Deserialize, Serialize};
use url::Url;

/// Which of an endpoint's URLs to call; public unless the operator says.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Interface {
    /// Reachable from anywhere; what tenants normally use.
    #[default]
    Public,
    /// The provider's internal network.
    Internal,
    /// Admin endpoints, rarely exposed.
    Admin,
}

impl Interface {
    fn as_str(self) -> &'static str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
        }
    }
}

/// One endpoint of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Service type (`compute`, `image`, `identity`, ...).
    pub service_type: String,
    /// Region id (v3 `region_id`, falling back to `region`; v2.0 `region`).
    pub region: String,
    /// Interface of this URL.
    pub interface: Interface,
    /// Base URL of the service.
    pub url: Url,
}

/// All endpoints of a token's catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    endpoints: Vec<Endpoint>,
}

#[derive(Deserialize)]
struct V3Service {
    #[serde(rename = "type")]
    service_type: String,
    #[serde(default)]
    endpoints: Vec<V3Endpoint>,
}

#[derive(Deserialize)]
struct V3Endpoint {
    interface: String,
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
    url: String,
}

#[derive(Deserialize)]
struct V2Service {
    #[serde(rename = "type")]
    service_type: String,
    #[serde(default)]
    endpoints: Vec<V2Endpoint>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V2Endpoint {
    #[serde(default)]
    region: Option<String>,
    #[serde(rename = "publicURL", default)]
    public_url: Option<String>,
    #[serde(rename = "internalURL", default)]
    internal_url: Option<String>,
    #[serde(rename = "adminURL", default)]
    admin_url: Option<String>,
}

fn parse_interface(name: &str) -> Option<Interface> {
    match name {
        "public" => Some(Interface::Public),
        "internal" => Some(Interface::Internal),
        "admin" => Some(Interface::Admin),
        _ => None,
    }
}

impl Catalog {
    /// Reads the v3 `catalog` array (from a token or `/v3/auth/catalog`).
    /// Entries with unknown interfaces or unparsable URLs are skipped.
    pub fn from_v3(value: &serde_json::Value) -> Result<Catalog, serde_json::Error> {
        let services: Vec<V3Service> = serde_json::from_value(value.clone())?;
        let mut endpoints = Vec::new();
        for service in services {
            for endpoint in service.endpoints {
                let (Some(interface), Ok(url)) = (
                    parse_interface(&endpoint.interface),
                    Url::parse(&endpoint.url),
                ) else {
                    continue;
                };
                let Some(region) = endpoint.region_id.or(endpoint.region) else {
                    continue;
                };
                endpoints.push(Endpoint {
                    service_type: service.service_type.clone(),
                    region,
                    interface,
                    url,
                });
            }
        }
        Ok(Catalog { endpoints })
    }

    /// Reads the v2.0 `serviceCatalog` array, one entry per URL kind.
    pub fn from_v2(value: &serde_json::Value) -> Result<Catalog, serde_json::Error> {
        let services: Vec<V2Service> = serde_json::from_value(value.clone())?;
        let mut endpoints = Vec::new();
        for service in services {
            for endpoint in service.endpoints {
                let Some(region) = endpoint.region else {
                    continue;
                };
                for (interface, url) in [
                    (Interface::Public, endpoint.public_url),
                    (Interface::Internal, endpoint.internal_url),
                    (Interface::Admin, endpoint.admin_url),
                ] {
                    if let Some(Ok(url)) = url.map(|u| Url::parse(&u)) {
                        endpoints.push(Endpoint {
                            service_type: service.service_type.clone(),
                            region: region.clone(),
                            interface,
                            url,
                        });
                    }
                }
            }
        }
        Ok(Catalog { endpoints })
    }

    /// The URL of `service_type` in `region` for `interface`.
    pub fn endpoint(&self, service_type: &str, region: &str, interface: Interface) -> Option<&Url> {
        self.endpoints
            .iter()
            .find(|e| {
                e.service_type == service_type && e.region == region && e.interface == interface
            })
            .map(|e| &e.url)
    }

    /// Regions offering `service_type` on `interface`, sorted and unique.
    pub fn regions(&self, service_type: &str, interface: Interface) -> Vec<String> {
        let mut regions: Vec<String> = self
            .endpoints
            .iter()
            .filter(|e| e.service_type == service_type && e.interface == interface)
            .map(|e| e.region.clone())
            .collect();
        regions.sort();
        regions.dedup();
        regions
    }

    /// Every endpoint, for display and diagnostics.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }
}

impl std::fmt::Display for Interface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_real_v3_catalog() {
        let body: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/004-catalog.json")).unwrap();
        let catalog = Catalog::from_v3(&body["catalog"]).unwrap();
        assert_eq!(
            catalog.regions("compute", Interface::Public),
            vec!["RegionOne", "RegionTwo"]
        );
        assert_eq!(
            catalog
                .endpoint("compute", "RegionTwo", Interface::Public)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:18774/v2.1"
        );
        assert_eq!(
            catalog
                .endpoint("image", "RegionOne", Interface::Internal)
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9292/"
        );
        assert!(
            catalog
                .endpoint("compute", "RegionThree", Interface::Public)
                .is_none()
        );
    }

    #[test]
    fn reads_a_v2_catalog() {
        let body = serde_json::json!([
            {"type": "compute", "name": "nova", "endpoints": [
                {"region": "North", "publicURL": "https://n.example/v2.1", "internalURL": "http://10.0.0.1/v2.1"},
                {"region": "South", "publicURL": "https://s.example/v2.1"}
            ]},
            {"type": "image", "name": "glance", "endpoints": [
                {"region": "North", "publicURL": "https://img.example"}
            ]}
        ]);
        let catalog = Catalog::from_v2(&body).unwrap();
        assert_eq!(
            catalog.regions("compute", Interface::Public),
            vec!["North", "South"]
        );
        assert_eq!(
            catalog.regions("compute", Interface::Internal),
            vec!["North"]
        );
        assert_eq!(
            catalog
                .endpoint("image", "North", Interface::Public)
                .unwrap()
                .as_str(),
            "https://img.example/"
        );
    }
}
