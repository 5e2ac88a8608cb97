//! Reading a standard OpenStack `clouds.yaml` (with `secure.yaml` merged
//! over it) into account registrations. Every cloud and region list is
//! checked before anything is imported: one bad entry fails the whole
//! import, so a typo never leaves half an import behind.

use std::path::Path;

use anyhow::Context as _;
use serde_json::{Value as Json, json};
use serde_yaml_ng::{Mapping, Value};

/// Merges `over` into `base`, recursively for mappings.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (slot, value) => *slot = value,
    }
}

fn text(map: &Mapping, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn named(auth: &Mapping, prefix: &str, default_domain: Option<String>) -> Option<Json> {
    if let Some(id) = text(auth, &format!("{prefix}_id")) {
        return Some(json!({"id": id}));
    }
    let name = text(auth, &format!("{prefix}_name"))
        .or_else(|| (prefix == "user").then(|| text(auth, "username")).flatten())?;
    let domain_id = text(auth, &format!("{prefix}_domain_id"));
    let domain = text(auth, &format!("{prefix}_domain_name")).or(default_domain);
    Some(match (domain_id, domain) {
        (Some(id), _) => json!({"name": name, "domain_id": id}),
        (None, Some(domain)) => json!({"name": name, "domain": domain}),
        (None, None) => json!({"name": name, "domain": "Default"}),
    })
}

/// One cloud → the body of `POST /v1/accounts`, or why not.
fn account(name: &str, cloud: &Mapping) -> Result<Json, String> {
    let auth = cloud
        .get("auth")
        .and_then(Value::as_mapping)
        .ok_or("no auth section")?;
    let auth_url = text(auth, "auth_url").ok_or("auth.auth_url is missing")?;
    let version = match text(cloud, "identity_api_version").as_deref() {
        None | Some("3") | Some("3.0") => "v3",
        Some("2") | Some("2.0") => "v2.0",
        Some(other) => return Err(format!("identity_api_version {other} is not supported")),
    };
    let mut body = json!({"name": name, "auth_url": auth_url, "identity_version": version});
    if let Some(interface) = text(cloud, "interface") {
        body["interface"] = json!(interface);
    }
    let auth_type = text(cloud, "auth_type").unwrap_or_else(|| "password".into());
    let default_domain = text(auth, "domain_name");
    match auth_type.as_str() {
        "password" | "v3password" | "v2password" => {
            let password = text(auth, "password")
                .ok_or("auth.password is missing (in clouds.yaml or secure.yaml)")?;
            let user = named(auth, "user", default_domain.clone())
                .ok_or("auth.username or auth.user_id is missing")?;
            let project = named(auth, "project", default_domain)
                .or_else(|| {
                    text(auth, "tenant_name").map(|t| json!({"name": t, "domain": "Default"}))
                })
                .ok_or("auth.project_name or auth.project_id is missing")?;
            body["user"] = user;
            body["project"] = project;
            body["password"] = json!(password);
        }
        "v3applicationcredential" => {
            let secret = text(auth, "application_credential_secret").ok_or(
                "auth.application_credential_secret is missing (in clouds.yaml or secure.yaml)",
            )?;
            let credential = match (
                text(auth, "application_credential_id"),
                text(auth, "application_credential_name"),
            ) {
                (Some(id), _) => json!({"id": id, "secret": secret}),
                (None, Some(credential)) => {
                    let user = named(auth, "user", default_domain)
                        .ok_or("auth.username is needed with application_credential_name")?;
                    json!({"name": credential, "user": user, "secret": secret})
                }
                (None, None) => {
                    return Err("auth.application_credential_id or _name is missing".into());
                }
            };
            body["application_credential"] = credential;
        }
        other => return Err(format!("auth_type {other} is not supported")),
    }
    let mut regions: Vec<String> = Vec::new();
    if let Some(list) = cloud.get("regions") {
        for entry in list.as_sequence().ok_or("regions must be a list")? {
            let region = match entry {
                Value::String(r) => r.clone(),
                Value::Mapping(m) => text(m, "name").ok_or("a region entry has no name")?,
                _ => return Err("regions entries are names or {name: ...}".into()),
            };
            regions.push(region);
        }
    } else if let Some(region) = text(cloud, "region_name") {
        regions.push(region);
    }
    body["regions"] = json!(regions);
    Ok(body)
}

/// Reads `clouds` (and `secure`) into account bodies, keeping only the
/// clouds named in `only` when it is not empty.
pub fn read(clouds: &Path, secure: Option<&Path>, only: &[String]) -> anyhow::Result<Vec<Json>> {
    let load = |path: &Path| -> anyhow::Result<Value> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not valid YAML", path.display()))
    };
    let mut document = load(clouds)?;
    if let Some(secure) = secure {
        merge(&mut document, load(secure)?);
    }
    let clouds_map = document
        .get("clouds")
        .and_then(Value::as_mapping)
        .with_context(|| format!("{} has no `clouds:` mapping", clouds.display()))?;
    let mut bodies = Vec::new();
    let mut problems = Vec::new();
    for (name, cloud) in clouds_map {
        let Some(name) = name.as_str() else { continue };
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        match cloud
            .as_mapping()
            .ok_or_else(|| "not a mapping".to_owned())
            .and_then(|c| account(name, c))
        {
            Ok(body) => bodies.push(body),
            Err(problem) => problems.push(format!("cloud {name}: {problem}")),
        }
    }
    if let Some(missing) = only.iter().find(|o| !clouds_map.contains_key(o.as_str())) {
        problems.push(format!("cloud {missing} is not in {}", clouds.display()));
    }
    if !problems.is_empty() {
        anyhow::bail!("nothing imported:\n  {}", problems.join("\n  "));
    }
    Ok(bodies)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOUDS: &str = r#"
clouds:
  acme:
    auth:
      auth_url: https://keystone.acme.example:5000/v3
      username: ci
      project_name: builds
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
  bigcloud:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://identity.bigcloud.example/v3
      application_credential_id: 0123abcd
    regions:
      - fra1
      - name: ams1
        values:
          networks: []
"#;
    const SECURE: &str = r#"
clouds:
  acme:
    auth:
      password: pw-from-secure
  bigcloud:
    auth:
      application_credential_secret: app-secret-from-secure
"#;

    fn files(
        clouds: &str,
        secure: &str,
    ) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("clouds.yaml");
        let s = dir.path().join("secure.yaml");
        std::fs::write(&c, clouds).unwrap();
        std::fs::write(&s, secure).unwrap();
        (dir, c, s)
    }

    #[test]
    fn password_and_application_credential_clouds_with_secure_merged() {
        let (_dir, c, s) = files(CLOUDS, SECURE);
        let bodies = read(&c, Some(&s), &[]).unwrap();
        assert_eq!(bodies.len(), 2);
        let acme = &bodies[0];
        assert_eq!(acme["password"], "pw-from-secure");
        assert_eq!(acme["user"], json!({"name": "ci", "domain": "Default"}));
        assert_eq!(acme["regions"], json!(["RegionOne"]));
        let big = &bodies[1];
        assert_eq!(
            big["application_credential"],
            json!({"id": "0123abcd", "secret": "app-secret-from-secure"})
        );
        assert_eq!(big["regions"], json!(["fra1", "ams1"]));
    }

    #[test]
    fn a_missing_secret_fails_the_whole_import() {
        let (_dir, c, _) = files(CLOUDS, "");
        let error = read(&c, None, &[]).unwrap_err().to_string();
        assert!(error.contains("nothing imported"), "{error}");
        assert!(
            error.contains("cloud acme: auth.password is missing"),
            "{error}"
        );
    }

    #[test]
    fn malformed_yaml_is_a_clear_error() {
        let (_dir, c, _) = files("clouds: [unclosed", "");
        let error = format!("{:#}", read(&c, None, &[]).unwrap_err());
        assert!(error.contains("not valid YAML"), "{error}");
    }
}
