//! Calls to one region's Nova, at the microversion negotiated on connect.

use std::sync::Arc;

use base64::Engine as _;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::catalog::Interface;
use super::error::{Class, ProviderError};
use super::http::Answer;
use super::microversion::{
    LAST_KEYPAIR_GENERATION, Microversion, NETWORKS_REQUIRED, SERVER_TAGS, TAGS_AT_CREATE,
    negotiate,
};
use super::nova_types::{
    AbsoluteLimits, CreateServer, Flavor, Keypair, Networks, Server, ServerFilter, ServerListing,
};
use super::session::Session;

/// Most pages followed in one listing, so a looping `next` link cannot hold
/// a caller forever.
const MAX_PAGES: usize = 1000;

/// One account-region's compute API.
#[derive(Debug, Clone)]
pub struct ComputeClient {
    session: Arc<Session>,
    region: String,
    endpoint: Url,
    microversion: Microversion,
    server_min: Microversion,
}

#[derive(Deserialize)]
struct VersionDoc {
    version: VersionInfo,
}

#[derive(Deserialize)]
struct VersionInfo {
    #[serde(default)]
    version: String,
    #[serde(default)]
    min_version: String,
}

/// Finds `service_type` in `region` of the session's catalog.
pub(crate) async fn endpoint_of(
    session: &Session,
    service_type: &str,
    region: &str,
) -> Result<Url, ProviderError> {
    let interface: Interface = session.spec().interface;
    session
        .catalog()
        .await?
        .endpoint(service_type, region, interface)
        .cloned()
        .ok_or_else(|| {
            ProviderError::local(
                Class::BadRequest,
                format!("no {interface} {service_type} endpoint in region {region}"),
            )
        })
}

/// `base` with `segments` appended, each percent-encoded.
pub(crate) fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

impl ComputeClient {
    /// Finds the region's compute endpoint and negotiates the microversion.
    pub async fn connect(
        session: Arc<Session>,
        region: &str,
    ) -> Result<ComputeClient, ProviderError> {
        let endpoint = endpoint_of(&session, "compute", region).await?;
        let root = join(&endpoint, &[""]);
        let answer = session
            .send(|_| session.client().request(Method::GET, root.clone()))
            .await?;
        let doc: VersionDoc = answer.json()?;
        let microversion =
            negotiate(&doc.version.min_version, &doc.version.version).ok_or_else(|| {
                ProviderError::local(
                    Class::BadRequest,
                    format!(
                        "compute API offers {}..{}, none of which this client supports",
                        doc.version.min_version, doc.version.version
                    ),
                )
            })?;
        let server_min = doc
            .version
            .min_version
            .parse()
            .unwrap_or(Microversion::new(2, 1));
        Ok(ComputeClient {
            session,
            region: region.to_owned(),
            endpoint,
            microversion,
            server_min,
        })
    }

    /// The negotiated microversion.
    pub fn microversion(&self) -> Microversion {
        self.microversion
    }

    /// The region this client talks to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Whether `create_server` can carry tags itself (2.52+); below that the
    /// caller tags with [`ComputeClient::add_tag`] after the create.
    pub fn tags_at_create(&self) -> bool {
        self.microversion >= TAGS_AT_CREATE
    }

    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
        microversion: Microversion,
    ) -> Result<Answer, ProviderError> {
        let mut url = join(&self.endpoint, segments);
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        self.session
            .send(|_| {
                let mut request = self
                    .session
                    .client()
                    .request(method.clone(), url.clone())
                    .header("OpenStack-API-Version", format!("compute {microversion}"))
                    .header("X-OpenStack-Nova-API-Version", microversion.to_string());
                if let Some(body) = body {
                    request = request.json(body);
                }
                request
            })
            .await
    }

    /// Creates a server; returns its id. Nova answers 202 before building.
    pub async fn create_server(&self, request: &CreateServer) -> Result<String, ProviderError> {
        let mut server = json!({
            "name": request.name,
            "flavorRef": request.flavor_ref,
            "imageRef": request.image_ref,
        });
        if let Some(key) = &request.key_name {
            server["key_name"] = json!(key);
        }
        if !request.metadata.is_empty() {
            server["metadata"] = json!(request.metadata);
        }
        if let Some(data) = &request.user_data {
            server["user_data"] = json!(base64::engine::general_purpose::STANDARD.encode(data));
        }
        match &request.networks {
            Networks::Auto if self.microversion >= NETWORKS_REQUIRED => {
                server["networks"] = json!("auto")
            }
            Networks::None if self.microversion >= NETWORKS_REQUIRED => {
                server["networks"] = json!("none")
            }
            Networks::Uuids(uuids) => {
                server["networks"] = uuids.iter().map(|uuid| json!({"uuid": uuid})).collect()
            }
            Networks::Auto | Networks::None => {}
        }
        if self.tags_at_create() && !request.tags.is_empty() {
            server["tags"] = json!(request.tags);
        }
        #[derive(Deserialize)]
        struct Created {
            server: CreatedId,
        }
        #[derive(Deserialize)]
        struct CreatedId {
            id: String,
        }
        let body = json!({ "server": server });
        let answer = self
            .call(
                Method::POST,
                &["servers"],
                &[],
                Some(&body),
                self.microversion,
            )
            .await?;
        Ok(answer.json::<Created>()?.server.id)
    }

    /// Adds a tag to an existing server (for microversions below 2.52).
    pub async fn add_tag(&self, server_id: &str, tag: &str) -> Result<(), ProviderError> {
        if self.microversion < SERVER_TAGS {
            return Err(ProviderError::local(
                Class::BadRequest,
                "server tags need compute microversion 2.26",
            ));
        }
        self.call(
            Method::PUT,
            &["servers", server_id, "tags", tag],
            &[],
            None,
            self.microversion,
        )
        .await
        .map(drop)
    }

    /// One server; a 404 error (`is_not_found`) means it is gone.
    pub async fn get_server(&self, id: &str) -> Result<Server, ProviderError> {
        #[derive(Deserialize)]
        struct One {
            server: Server,
        }
        let answer = self
            .call(Method::GET, &["servers", id], &[], None, self.microversion)
            .await?;
        Ok(answer.json::<One>()?.server)
    }

    /// All servers matching `filter`, following pagination.
    pub async fn list_servers(&self, filter: &ServerFilter) -> Result<Vec<Server>, ProviderError> {
        Ok(self.list_servers_dated(filter).await?.servers)
    }

    /// All servers matching `filter`, following pagination, with the
    /// provider's clock at the first page.
    pub async fn list_servers_dated(
        &self,
        filter: &ServerFilter,
    ) -> Result<ServerListing, ProviderError> {
        #[derive(Deserialize)]
        struct Page {
            servers: Vec<Server>,
            #[serde(default)]
            servers_links: Vec<Link>,
        }
        let mut query: Vec<(&str, String)> = Vec::new();
        if !filter.tags.is_empty() {
            query.push(("tags", filter.tags.join(",")));
        }
        if let Some(name) = &filter.name {
            query.push(("name", name.clone()));
        }
        if let Some(status) = &filter.status {
            query.push(("status", status.clone()));
        }
        if let Some(limit) = filter.limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(since) = filter.changes_since {
            query.push((
                "changes-since",
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ));
        }
        let mut listing = ServerListing::default();
        for page_number in 0..MAX_PAGES {
            let answer = self
                .call(
                    Method::GET,
                    &["servers", "detail"],
                    &query,
                    None,
                    self.microversion,
                )
                .await?;
            if page_number == 0 {
                listing.provider_date = answer
                    .headers
                    .get(reqwest::header::DATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
                    .map(|d| d.to_utc());
            }
            let page: Page = answer.json()?;
            let has_next = page.servers_links.iter().any(|l| l.rel == "next");
            let last = page.servers.last().map(|s| s.id.clone());
            listing.servers.extend(page.servers);
            match (has_next, last) {
                (true, Some(marker)) => {
                    query.retain(|(k, _)| *k != "marker");
                    query.push(("marker", marker));
                }
                _ => break,
            }
        }
        Ok(listing)
    }

    /// Deletes a server. Nova answers 204 and keeps showing it with
    /// `task_state: deleting` for a while before it is gone.
    pub async fn delete_server(&self, id: &str) -> Result<(), ProviderError> {
        self.call(
            Method::DELETE,
            &["servers", id],
            &[],
            None,
            self.microversion,
        )
        .await
        .map(drop)
    }

    /// Every flavor visible to the project.
    pub async fn flavors(&self) -> Result<Vec<Flavor>, ProviderError> {
        #[derive(Deserialize)]
        struct Page {
            flavors: Vec<Flavor>,
            #[serde(default)]
            flavors_links: Vec<Link>,
        }
        let mut query: Vec<(&str, String)> = Vec::new();
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self
                .call(
                    Method::GET,
                    &["flavors", "detail"],
                    &query,
                    None,
                    self.microversion,
                )
                .await?;
            let page: Page = answer.json()?;
            let has_next = page.flavors_links.iter().any(|l| l.rel == "next");
            let last = page.flavors.last().map(|f| f.id.clone());
            all.extend(page.flavors);
            match (has_next, last) {
                (true, Some(marker)) => query = vec![("marker", marker)],
                _ => break,
            }
        }
        Ok(all)
    }

    /// Imports an OpenSSH public key under `name`.
    pub async fn import_keypair(
        &self,
        name: &str,
        public_key: &str,
    ) -> Result<Keypair, ProviderError> {
        let body = json!({"keypair": {"name": name, "public_key": public_key}});
        self.keypair_call(&body, self.microversion).await
    }

    /// Asks Nova to generate a key pair; only possible up to 2.91, so the
    /// call is made at that microversion when the server allows it.
    pub async fn create_keypair(&self, name: &str) -> Result<Keypair, ProviderError> {
        let version = self.microversion.min(LAST_KEYPAIR_GENERATION);
        if version < self.server_min {
            return Err(ProviderError::local(
                Class::BadRequest,
                "this compute API no longer generates key pairs; import one",
            ));
        }
        let body = json!({"keypair": {"name": name}});
        self.keypair_call(&body, version).await
    }

    async fn keypair_call(
        &self,
        body: &Value,
        version: Microversion,
    ) -> Result<Keypair, ProviderError> {
        #[derive(Deserialize)]
        struct One {
            keypair: Keypair,
        }
        let answer = self
            .call(Method::POST, &["os-keypairs"], &[], Some(body), version)
            .await?;
        Ok(answer.json::<One>()?.keypair)
    }

    /// The user's key pairs in this region.
    pub async fn list_keypairs(&self) -> Result<Vec<Keypair>, ProviderError> {
        #[derive(Deserialize)]
        struct List {
            keypairs: Vec<Wrapped>,
        }
        #[derive(Deserialize)]
        struct Wrapped {
            keypair: Keypair,
        }
        let answer = self
            .call(Method::GET, &["os-keypairs"], &[], None, self.microversion)
            .await?;
        Ok(answer
            .json::<List>()?
            .keypairs
            .into_iter()
            .map(|w| w.keypair)
            .collect())
    }

    /// Deletes a key pair by name.
    pub async fn delete_keypair(&self, name: &str) -> Result<(), ProviderError> {
        self.call(
            Method::DELETE,
            &["os-keypairs", name],
            &[],
            None,
            self.microversion,
        )
        .await
        .map(drop)
    }

    /// The project's absolute limits and usage in this region.
    pub async fn limits(&self) -> Result<AbsoluteLimits, ProviderError> {
        #[derive(Deserialize)]
        struct Body {
            limits: Limits,
        }
        #[derive(Deserialize)]
        struct Limits {
            absolute: AbsoluteLimits,
        }
        let answer = self
            .call(Method::GET, &["limits"], &[], None, self.microversion)
            .await?;
        Ok(answer.json::<Body>()?.limits.absolute)
    }
}

#[derive(Deserialize)]
pub(crate) struct Link {
    #[serde(default)]
    pub rel: String,
}
