//! The REST API served in-process over a fleet on the simulator, and a
//! small HTTP client for it.

use std::sync::Arc;

use oms_actors::Fleet;
use oms_actors::model::Role;
use oms_actors::store::Store;
use oms_sim::Simulator;
use oms_web::{Api, ApiConfig};
use secrecy::ExposeSecret;
use serde_json::Value;

use super::fleet::{fast_config, fleet_on, sim_of};

/// Issues a token straight into `store`.
pub async fn issue(
    store: &dyn Store,
    name: &str,
    role: Role,
    instance_limit: Option<u32>,
) -> (oms_actors::model::ApiToken, secrecy::SecretString) {
    let new = oms_actors::tokens::NewToken {
        name: name.into(),
        role,
        instance_limit,
        continues: None,
    };
    oms_actors::tokens::issue(store, new).await.unwrap()
}

/// A running API.
pub struct Harness {
    pub sim: Simulator,
    pub fleet: Arc<Fleet>,
    pub store: Arc<dyn Store>,
    pub base: String,
    pub admin: String,
    http: reqwest::Client,
    contract: &'static super::contract::Contract,
}

/// An answer: status, headers, body as JSON (Null when empty or not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

/// Starts the simulator (two providers), a fleet and the API.
pub async fn start(config: ApiConfig) -> Harness {
    start_with(config, |_| {}).await
}

/// Like [`start`], each simulated provider changed by `adjust`.
pub async fn start_with(
    config: ApiConfig,
    adjust: impl Fn(&mut oms_sim::ProviderConfig),
) -> Harness {
    let sim = sim_of(&["north", "south"], adjust).await;
    let (fleet, store) = fleet_on(&sim, fast_config()).await;
    let fleet = Arc::new(fleet);
    let (_, admin) = issue(store.as_ref(), "root", Role::Admin, None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let api = Api::new(fleet.clone(), config);
    tokio::spawn(oms_web::serve(listener, api, std::future::pending()));
    let contract = super::contract::of(&base).await;
    Harness {
        contract,
        sim,
        fleet,
        store,
        base,
        admin: admin.expose_secret().to_owned(),
        http: reqwest::Client::new(),
    }
}

impl Harness {
    /// A new token of `role` named `name`.
    pub async fn token(&self, name: &str, role: Role, limit: Option<u32>) -> String {
        let (_, value) = issue(self.store.as_ref(), name, role, limit).await;
        value.expose_secret().to_owned()
    }

    /// Sends a request; `body` is sent as-is with `content_type`.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let method_name = method;
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("Content-Type", content_type);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        self.contract.check(method_name, path, status, &text);
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    /// A JSON request.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
        let content_type = bytes.as_ref().map(|_| "application/json");
        self.raw(method, path, token, content_type, bytes, &[])
            .await
    }

    /// Every account (with its secret), profile and token as stored, to
    /// prove a rejected change changed nothing.
    pub fn settings(&self) -> String {
        let mut out = String::new();
        for account in self.store.list_accounts().unwrap() {
            out += &serde_json::to_string(&account).unwrap();
            out += account.secret.expose_secret();
        }
        out += &serde_json::to_string(&self.store.list_profiles().unwrap()).unwrap();
        out += &serde_json::to_string(&self.store.list_tokens().unwrap()).unwrap();
        out
    }

    /// Counts of what the store holds, to prove a rejected write changed
    /// nothing.
    pub fn census(&self) -> [usize; 5] {
        let instances = self
            .store
            .list_instances(&oms_actors::store::InstanceFilter::default())
            .unwrap()
            .len();
        [
            instances,
            self.store.list_requests().unwrap().len(),
            self.store.list_accounts().unwrap().len(),
            self.store.list_profiles().unwrap().len(),
            self.store.list_tokens().unwrap().len(),
        ]
    }
}
