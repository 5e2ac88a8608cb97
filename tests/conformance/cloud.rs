//! Direct calls to the real cloud, independent of our client: what the
//! tests check against (servers, key pairs, quotas) and how they change it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

/// Both regions of the conformance cloud.
pub const REGIONS: [&str; 2] = ["RegionOne", "RegionTwo"];

/// Keystone's v3 URL (`CONFORMANCE_AUTH_URL`, or the tier's default).
pub fn auth_url() -> String {
    std::env::var("CONFORMANCE_AUTH_URL").unwrap_or_else(|_| "http://127.0.0.1:5000/v3".into())
}

/// A project-scoped token and the compute endpoints of its catalog.
pub struct Scoped {
    http: reqwest::Client,
    token: std::sync::Mutex<String>,
    /// Where and as whom to sign in again when the token expires (the
    /// tier's tokens live two minutes); `None` for a deliberately bad one.
    again: Option<(String, String)>,
    /// The project the token is scoped to.
    pub project_id: String,
    compute: BTreeMap<String, String>,
    image: Option<String>,
}

/// Signs `user` in to the conformance cloud's project of the same name.
pub async fn login(user: &str) -> Scoped {
    login_at(&auth_url(), user).await
}

/// Signs `user` in at `auth_url` to the project of the same name
/// (password `secret`, domain Default: the simulator has the same users).
pub async fn login_at(auth_url: &str, user: &str) -> Scoped {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (token, body) = token_for(&http, auth_url, user).await;
    let mut compute = BTreeMap::new();
    let mut image = None;
    for service in body["token"]["catalog"].as_array().unwrap() {
        for endpoint in service["endpoints"].as_array().unwrap() {
            if endpoint["interface"] != "public" {
                continue;
            }
            let url = endpoint["url"]
                .as_str()
                .unwrap()
                .trim_end_matches('/')
                .to_owned();
            if service["type"] == "compute" {
                compute.insert(endpoint["region_id"].as_str().unwrap().to_owned(), url);
            } else if service["type"] == "image" {
                image.get_or_insert(url);
            }
        }
    }
    Scoped {
        http,
        token: std::sync::Mutex::new(token),
        again: Some((auth_url.to_owned(), user.to_owned())),
        project_id: body["token"]["project"]["id"].as_str().unwrap().to_owned(),
        compute,
        image,
    }
}

async fn token_for(http: &reqwest::Client, auth_url: &str, user: &str) -> (String, Value) {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": "secret"}}},
        "scope": {"project": {"name": user, "domain": {"name": "Default"}}}}});
    let answer = http
        .post(format!("{auth_url}/auth/tokens"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201, "keystone refused {user}");
    let token = answer.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = answer.json().await.unwrap();
    (token, body)
}

impl Scoped {
    /// The same catalog with another token (an invalid one, say).
    pub fn with_token(&self, token: &str) -> Scoped {
        Scoped {
            http: self.http.clone(),
            token: std::sync::Mutex::new(token.to_owned()),
            again: None,
            project_id: self.project_id.clone(),
            compute: self.compute.clone(),
            image: self.image.clone(),
        }
    }

    /// The id of the active image called `name`, from Glance.
    pub async fn image_id(&self, name: &str) -> String {
        let url = format!("{}/v2/images?name={name}", self.image.as_deref().unwrap());
        let token = self.token.lock().unwrap().clone();
        let body: Value = self
            .http
            .get(url)
            .header("X-Auth-Token", token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["images"][0]["id"].as_str().unwrap().to_owned()
    }

    /// The compute endpoint of `region`.
    pub fn compute(&self, region: &str) -> &str {
        &self.compute[region]
    }

    /// One Nova call: status and JSON body (`Null` when there is none).
    pub async fn nova(
        &self,
        region: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        microversion: Option<&str>,
    ) -> (u16, Value) {
        let (status, text) = self
            .send(region, method.clone(), path, body.clone(), microversion)
            .await;
        let (status, text) = match &self.again {
            Some((auth_url, user)) if status == 401 => {
                let (token, _) = token_for(&self.http, auth_url, user).await;
                *self.token.lock().unwrap() = token;
                self.send(region, method, path, body, microversion).await
            }
            _ => (status, text),
        };
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn send(
        &self,
        region: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        microversion: Option<&str>,
    ) -> (u16, String) {
        let url = format!("{}{path}", self.compute(region));
        let token = self.token.lock().unwrap().clone();
        let mut request = self.http.request(method, url).header("X-Auth-Token", token);
        if let Some(version) = microversion {
            request = request.header("OpenStack-API-Version", format!("compute {version}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        (status, answer.text().await.unwrap())
    }

    /// Every server of the project in `region` (admin: of every project).
    pub async fn servers(&self, region: &str) -> Vec<Value> {
        let (status, body) = self
            .nova(
                region,
                reqwest::Method::GET,
                "/servers/detail",
                None,
                Some("2.79"),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["servers"].as_array().unwrap().clone()
    }

    /// One server, as this user sees it.
    pub async fn server(&self, region: &str, id: &str) -> (u16, Value) {
        self.nova(
            region,
            reqwest::Method::GET,
            &format!("/servers/{id}"),
            None,
            Some("2.79"),
        )
        .await
    }

    /// Names of the user's key pairs in `region`.
    pub async fn keypairs(&self, region: &str) -> Vec<String> {
        let (status, body) = self
            .nova(region, reqwest::Method::GET, "/os-keypairs", None, None)
            .await;
        assert_eq!(status, 200, "{body}");
        body["keypairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["keypair"]["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Sets (or with `None` resets) `project`'s instance quota in `region`.
    pub async fn instance_quota(&self, region: &str, project: &str, instances: Option<u32>) {
        let path = format!("/os-quota-sets/{project}");
        let (status, body) = match instances {
            Some(n) => {
                let body = json!({"quota_set": {"instances": n}});
                self.nova(region, reqwest::Method::PUT, &path, Some(body), None)
                    .await
            }
            None => {
                self.nova(region, reqwest::Method::DELETE, &path, None, None)
                    .await
            }
        };
        assert!(
            status == 200 || status == 202,
            "quota change: {status} {body}"
        );
    }

    /// Deletes every server and every key pair of ours (`oms-`, and the
    /// differential test's `diff-`) of this user, and
    /// waits until Nova shows none: a failed test must not spoil the next.
    pub async fn wipe(&self) {
        for region in REGIONS {
            for server in self.servers(region).await {
                let id = server["id"].as_str().unwrap();
                self.nova(
                    region,
                    reqwest::Method::DELETE,
                    &format!("/servers/{id}"),
                    None,
                    None,
                )
                .await;
            }
            for name in self.keypairs(region).await {
                if name.starts_with("oms-") || name.starts_with("diff-") {
                    self.nova(
                        region,
                        reqwest::Method::DELETE,
                        &format!("/os-keypairs/{name}"),
                        None,
                        None,
                    )
                    .await;
                }
            }
        }
        self.wait_empty(Duration::from_secs(120)).await;
    }

    /// Waits until no server of this user is left in either region.
    pub async fn wait_empty(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut left = Vec::new();
            for region in REGIONS {
                left.extend(self.servers(region).await);
            }
            if left.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "servers left in Nova: {}",
                left.iter()
                    .map(|s| format!("{} {}", s["name"], s["status"]))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Key pairs of ours (`oms-` names) still in either region.
    pub async fn our_keypairs(&self) -> Vec<String> {
        let mut ours = Vec::new();
        for region in REGIONS {
            ours.extend(
                self.keypairs(region)
                    .await
                    .into_iter()
                    .filter(|name| name.starts_with("oms-")),
            );
        }
        ours
    }
}

/// Stops (`stop`) or starts (`start`) the compute API of `region`, through
/// the tier's own script (it knows the processes it started).
pub fn nova_api(action: &str, region: &str) {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/openstack/nova-api.sh");
    let n = if region == "RegionOne" { "1" } else { "2" };
    let status = std::process::Command::new("bash")
        .arg(script)
        .args([action, n])
        .status()
        .unwrap();
    assert!(status.success(), "nova-api.sh {action} {n} failed");
}
