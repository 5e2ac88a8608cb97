//! What an account authenticates with.
//!
//! Secrets are `SecretString`s, so `Debug` of any of these types prints
//! `[REDACTED]` instead of a password or application-credential secret.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use super::catalog::Interface;

/// Which Keystone API the provider speaks; v2.0 only for older clouds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum IdentityVersion {
    /// Keystone v3 (`POST /v3/auth/tokens`).
    #[default]
    #[serde(rename = "v3")]
    V3,
    /// Keystone v2.0 (`POST /v2.0/tokens`), removed upstream in Queens.
    #[serde(rename = "v2.0")]
    V2,
}

/// A domain, by id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    /// Domain id, e.g. `default`.
    Id(String),
    /// Domain name, e.g. `Default`.
    Name(String),
}

/// A user or project, by id (globally unique) or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Named {
    /// By id: no domain needed.
    Id(String),
    /// By name, which is unique only within its domain.
    Name {
        /// The name.
        name: String,
        /// The domain the name lives in.
        domain: Domain,
    },
}

/// The secret part of an account.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// User and password, scoped to a project.
    Password {
        /// The user.
        user: Named,
        /// The user's password.
        password: SecretString,
        /// The project to scope the token to (the v2.0 tenant).
        project: Named,
    },
    /// A Keystone v3 application credential (already scoped by Keystone).
    ApplicationCredential {
        /// The credential's id, or its name with the owning user.
        credential: ApplicationCredentialRef,
        /// The credential's secret.
        secret: SecretString,
    },
}

/// How an application credential is named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationCredentialRef {
    /// By id.
    Id(String),
    /// By name, which needs the owning user.
    Name {
        /// The credential's name.
        name: String,
        /// Its owner.
        user: Named,
    },
}

/// Everything needed to get a token and find endpoints for one account.
#[derive(Debug, Clone)]
pub struct AuthSpec {
    /// Keystone's URL as the provider publishes it (`https://.../v3`).
    pub auth_url: Url,
    /// Keystone API version to use.
    pub identity_version: IdentityVersion,
    /// Credentials.
    pub credentials: Credentials,
    /// Catalog interface to use for service endpoints.
    pub interface: Interface,
}

impl AuthSpec {
    /// The token URL, whether or not `auth_url` already names the version.
    pub fn token_url(&self) -> Url {
        let (suffix, path) = match self.identity_version {
            IdentityVersion::V3 => ("v3", "auth/tokens"),
            IdentityVersion::V2 => ("v2.0", "tokens"),
        };
        let mut base = self.auth_url.clone();
        let trimmed = base.path().trim_end_matches('/').to_owned();
        let versioned = trimmed.ends_with(&format!("/{suffix}"));
        let new_path = if versioned {
            format!("{trimmed}/{path}")
        } else {
            format!("{trimmed}/{suffix}/{path}")
        };
        base.set_path(&new_path);
        base
    }

    /// The JSON body of the token request. Holds the secret: never log it.
    pub(crate) fn token_request_body(&self) -> Result<Value, &'static str> {
        match (self.identity_version, &self.credentials) {
            (
                IdentityVersion::V3,
                Credentials::Password {
                    user,
                    password,
                    project,
                },
            ) => {
                let mut user = named_v3(user);
                user["password"] = Value::String(password.expose_secret().to_owned());
                Ok(json!({"auth": {
                    "identity": {"methods": ["password"], "password": {"user": user}},
                    "scope": {"project": named_v3(project)}
                }}))
            }
            (IdentityVersion::V3, Credentials::ApplicationCredential { credential, secret }) => {
                let mut body = match credential {
                    ApplicationCredentialRef::Id(id) => json!({"id": id}),
                    ApplicationCredentialRef::Name { name, user } => {
                        json!({"name": name, "user": named_v3(user)})
                    }
                };
                body["secret"] = Value::String(secret.expose_secret().to_owned());
                Ok(json!({"auth": {"identity": {
                    "methods": ["application_credential"],
                    "application_credential": body
                }}}))
            }
            (
                IdentityVersion::V2,
                Credentials::Password {
                    user,
                    password,
                    project,
                },
            ) => {
                let Named::Name { name: username, .. } = user else {
                    return Err("keystone v2.0 needs the user by name");
                };
                let mut auth = json!({"passwordCredentials": {
                    "username": username,
                    "password": password.expose_secret(),
                }});
                match project {
                    Named::Id(id) => auth["tenantId"] = Value::String(id.clone()),
                    Named::Name { name, .. } => auth["tenantName"] = Value::String(name.clone()),
                }
                Ok(json!({"auth": auth}))
            }
            (IdentityVersion::V2, Credentials::ApplicationCredential { .. }) => {
                Err("application credentials need keystone v3")
            }
        }
    }
}

fn named_v3(named: &Named) -> Value {
    match named {
        Named::Id(id) => json!({"id": id}),
        Named::Name { name, domain } => json!({"name": name, "domain": domain_v3(domain)}),
    }
}

fn domain_v3(domain: &Domain) -> Value {
    match domain {
        Domain::Id(id) => json!({"id": id}),
        Domain::Name(name) => json!({"name": name}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str, version: IdentityVersion, credentials: Credentials) -> AuthSpec {
        AuthSpec {
            auth_url: Url::parse(url).unwrap(),
            identity_version: version,
            credentials,
            interface: Interface::Public,
        }
    }

    fn demo_password() -> Credentials {
        Credentials::Password {
            user: Named::Name {
                name: "demo".into(),
                domain: Domain::Name("Default".into()),
            },
            password: SecretString::from("secret"),
            project: Named::Name {
                name: "demo".into(),
                domain: Domain::Name("Default".into()),
            },
        }
    }

    #[test]
    fn v3_password_body_matches_the_real_request() {
        let body = spec(
            "http://127.0.0.1:5000/v3",
            IdentityVersion::V3,
            demo_password(),
        )
        .token_request_body()
        .unwrap();
        let expected = serde_json::json!({"auth": {"identity": {"methods": ["password"],
            "password": {"user": {"name": "demo", "domain": {"name": "Default"}, "password": "secret"}}},
            "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}}});
        assert_eq!(body, expected);
    }

    #[test]
    fn v2_body_matches_the_real_request() {
        let body = spec(
            "http://127.0.0.1:5000/v2.0",
            IdentityVersion::V2,
            demo_password(),
        )
        .token_request_body()
        .unwrap();
        let expected = serde_json::json!({"auth": {"passwordCredentials":
            {"username": "demo", "password": "secret"}, "tenantName": "demo"}});
        assert_eq!(body, expected);
    }

    #[test]
    fn application_credential_body_has_no_scope() {
        let credentials = Credentials::ApplicationCredential {
            credential: ApplicationCredentialRef::Id("abc".into()),
            secret: SecretString::from("s3cr3t"),
        };
        let body = spec("http://k/v3", IdentityVersion::V3, credentials)
            .token_request_body()
            .unwrap();
        assert_eq!(
            body["auth"]["identity"]["application_credential"]["id"],
            "abc"
        );
        assert!(body["auth"].get("scope").is_none());
    }

    #[test]
    fn token_url_with_and_without_version_suffix() {
        let v3 = |url| {
            spec(url, IdentityVersion::V3, demo_password())
                .token_url()
                .to_string()
        };
        assert_eq!(v3("http://k:5000/v3"), "http://k:5000/v3/auth/tokens");
        assert_eq!(v3("http://k:5000/v3/"), "http://k:5000/v3/auth/tokens");
        assert_eq!(v3("http://k:5000"), "http://k:5000/v3/auth/tokens");
        assert_eq!(
            v3("https://k/identity"),
            "https://k/identity/v3/auth/tokens"
        );
        let v2 = spec("http://k:5000/v2.0", IdentityVersion::V2, demo_password()).token_url();
        assert_eq!(v2.as_str(), "http://k:5000/v2.0/tokens");
    }

    #[test]
    fn debug_never_shows_secrets() {
        let credentials = Credentials::Password {
            user: Named::Id("u".into()),
            password: SecretString::from("hunter2-password"),
            project: Named::Id("p".into()),
        };
        let shown = format!(
            "{:?}",
            spec("http://k/v3", IdentityVersion::V3, credentials)
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }
}
