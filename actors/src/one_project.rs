//! One project, one account: two accounts on the same project (same
//! Keystone, same project, overlapping regions) would count its quota and
//! its servers twice. A registration that declares the project of another
//! account is refused; what only authentication tells (a project named by
//! one account and given by id by another, an application credential) is
//! found when the accounts connect, and the younger account then takes no
//! launches.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use url::Url;

use crate::model::{Account, AccountAuth};
use crate::openstack::{ApplicationCredentialRef, Domain, Named};

/// A Keystone as a comparable key: `http://k:5000/v3/`, `HTTP://K:5000`
/// and `http://k:5000/v2.0` are the same service.
pub fn keystone_key(url: &Url) -> String {
    let mut path = url.path().trim_end_matches('/').to_owned();
    for version in ["/v3", "/v2.0"] {
        if let Some(stripped) = path.strip_suffix(version) {
            path = stripped.to_owned();
        }
    }
    format!(
        "{}://{}:{}{}",
        url.scheme(),
        url.host_str().unwrap_or("").to_ascii_lowercase(),
        url.port_or_known_default().unwrap_or(0),
        path.trim_end_matches('/')
    )
}

/// The project an account declares, as far as its registration tells.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Declared {
    ProjectId(String),
    ProjectName {
        name: String,
        domain: String,
    },
    /// An application credential is bound to one project; the same
    /// credential twice is the same project.
    Credential(ApplicationCredentialRef),
}

fn domain_key(domain: &Domain) -> String {
    match domain {
        Domain::Id(id) => format!("id:{id}"),
        Domain::Name(name) => format!("name:{name}"),
    }
}

fn declared(account: &Account) -> Declared {
    match &account.auth {
        AccountAuth::Password { project, .. } => match project {
            Named::Id(id) => Declared::ProjectId(id.clone()),
            Named::Name { name, domain } => Declared::ProjectName {
                name: name.clone(),
                domain: domain_key(domain),
            },
        },
        AccountAuth::ApplicationCredential { credential } => {
            Declared::Credential(credential.clone())
        }
    }
}

/// Whether two region selections share a region (empty: every region).
fn regions_overlap(a: &[String], b: &[String]) -> bool {
    a.is_empty() || b.is_empty() || a.iter().any(|r| b.contains(r))
}

/// The other account whose registration declares the same project in an
/// overlapping set of regions, if any.
pub fn declared_clash<'a>(account: &Account, others: &'a [Account]) -> Option<&'a Account> {
    let keystone = keystone_key(&account.auth_url);
    let project = declared(account);
    others.iter().find(|other| {
        other.id != account.id
            && keystone_key(&other.auth_url) == keystone
            && declared(other) == project
            && regions_overlap(&account.regions, &other.regions)
    })
}

/// Why an account takes no launches: the account that holds its project.
pub fn clash_message(holder: &str) -> String {
    format!(
        "same project as account {holder}: its quota and servers would be counted twice; \
         remove one of the two, or give them disjoint regions"
    )
}

#[derive(Debug, Clone)]
struct Claim {
    name: String,
    keystone: String,
    project_id: String,
    regions: Vec<String>,
    /// Older accounts keep their project: (created, id) orders them.
    age: (DateTime<Utc>, String),
}

/// What claiming a project found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    /// An older account holds the project: this one takes no launches.
    pub held_by: Option<String>,
    /// Younger accounts that claimed the project first: they must connect
    /// again, and will find it held.
    pub displaced: Vec<String>,
}

/// The projects connected accounts authenticated into, shared by the
/// account supervisors.
#[derive(Debug, Clone, Default)]
pub struct ProjectClaims {
    inner: Arc<Mutex<BTreeMap<String, Claim>>>,
}

impl ProjectClaims {
    /// Records that `account` authenticated into `project_id` and uses
    /// `regions` (its catalog's, after its own selection; never empty: an
    /// account with no region claims nothing).
    pub fn claim(&self, account: &Account, project_id: &str, regions: &[String]) -> Claimed {
        let mine = Claim {
            name: account.name.clone(),
            keystone: keystone_key(&account.auth_url),
            project_id: project_id.to_owned(),
            regions: regions.to_vec(),
            age: (account.created_at, account.id.clone()),
        };
        let mut claims = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut claimed = Claimed::default();
        for (id, other) in claims.iter() {
            let same = *id != account.id
                && other.keystone == mine.keystone
                && other.project_id == mine.project_id
                && regions_overlap(&other.regions, &mine.regions);
            if !same {
                continue;
            }
            if other.age < mine.age {
                if claimed.held_by.is_none() {
                    claimed.held_by = Some(other.name.clone());
                }
            } else {
                claimed.displaced.push(id.clone());
            }
        }
        if claimed.held_by.is_some() {
            // The younger of a clashing pair never holds the project.
            claims.remove(&account.id);
            claimed.displaced.clear();
        } else {
            claims.insert(account.id.clone(), mine);
        }
        claimed
    }

    /// The account stopped: its project is free.
    pub fn release(&self, account_id: &str) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(account_id);
    }

    /// The connected account (name) whose project `account` declares by
    /// id, for registrations that name a project another account found
    /// by name.
    pub fn holder_of(&self, account: &Account) -> Option<String> {
        let Declared::ProjectId(project_id) = declared(account) else {
            return None;
        };
        let keystone = keystone_key(&account.auth_url);
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(id, c)| {
                **id != account.id
                    && c.keystone == keystone
                    && c.project_id == project_id
                    && regions_overlap(&account.regions, &c.regions)
            })
            .map(|(_, c)| c.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RegionLimits;
    use crate::openstack::{IdentityVersion, Interface};
    use secrecy::SecretString;

    fn account(id: &str, auth_url: &str, project: Named, regions: &[&str]) -> Account {
        Account {
            id: id.into(),
            name: format!("name-{id}"),
            auth_url: auth_url.parse().unwrap(),
            identity_version: IdentityVersion::V3,
            interface: Interface::Public,
            auth: AccountAuth::Password {
                user: Named::Id("u".into()),
                project,
            },
            secret: SecretString::from("s"),
            regions: regions.iter().map(|r| r.to_string()).collect(),
            networks: vec![],
            enabled: true,
            drain: false,
            priority: 0,
            limits: RegionLimits::default(),
            pins: Default::default(),
            created_at: DateTime::parse_from_rfc3339(&format!("2026-01-01T00:00:0{id}Z"))
                .unwrap()
                .to_utc(),
        }
    }

    fn demo() -> Named {
        Named::Name {
            name: "demo".into(),
            domain: Domain::Name("Default".into()),
        }
    }

    #[test]
    fn one_keystone_written_many_ways_is_one_key() {
        let key = |u: &str| keystone_key(&u.parse().unwrap());
        assert_eq!(key("http://k:5000/v3"), key("HTTP://K:5000/v3/"));
        assert_eq!(key("http://k:5000/v3"), key("http://k:5000"));
        assert_eq!(key("http://k:5000/v2.0"), key("http://k:5000/"));
        assert_eq!(key("https://k/identity/v3"), key("https://k:443/identity"));
        assert_ne!(key("http://k:5000/v3"), key("http://k:5001/v3"));
        assert_ne!(key("https://k/identity/v3"), key("https://k/v3"));
    }

    #[test]
    fn the_same_declared_project_clashes_where_regions_overlap() {
        let first = account("1", "http://k:5000/v3", demo(), &[]);
        let others = vec![first.clone()];
        let again = account("2", "http://K:5000/v3/", demo(), &[]);
        assert_eq!(declared_clash(&again, &others).unwrap().id, "1");
        // Disjoint regions do not share quota.
        let a = account("3", "http://k:5000/v3", demo(), &["R1"]);
        let b = account("4", "http://k:5000/v3", demo(), &["R2"]);
        assert!(declared_clash(&b, std::slice::from_ref(&a)).is_none());
        let c = account("5", "http://k:5000/v3", demo(), &["R2", "R1"]);
        assert!(declared_clash(&c, std::slice::from_ref(&a)).is_some());
        // Another project, another Keystone, or the account itself: no.
        let other = Named::Name {
            name: "ci".into(),
            domain: Domain::Name("Default".into()),
        };
        assert!(declared_clash(&account("6", "http://k:5000/v3", other, &[]), &others).is_none());
        assert!(declared_clash(&account("7", "http://j:5000/v3", demo(), &[]), &others).is_none());
        assert!(declared_clash(&first, &others).is_none());
    }

    #[test]
    fn the_older_account_keeps_a_project_found_at_authentication() {
        let claims = ProjectClaims::default();
        let older = account("1", "http://k:5000/v3", demo(), &[]);
        let younger = account("2", "http://k:5000/v3", Named::Id("p1".into()), &[]);
        let regions = vec!["R1".to_owned()];
        // The younger connects first: it holds the project for now.
        assert_eq!(claims.claim(&younger, "p1", &regions), Claimed::default());
        // The older connects: the younger is displaced.
        assert_eq!(
            claims.claim(&older, "p1", &regions),
            Claimed {
                held_by: None,
                displaced: vec!["2".into()],
            }
        );
        // The younger connects again and finds the project held.
        assert_eq!(
            claims.claim(&younger, "p1", &regions).held_by.as_deref(),
            Some("name-1")
        );
        // Registrations naming the project by id see who holds it.
        let third = account("3", "http://k:5000", Named::Id("p1".into()), &[]);
        assert_eq!(claims.holder_of(&third).as_deref(), Some("name-1"));
        claims.release("1");
        assert!(claims.holder_of(&third).is_none());
        assert_eq!(claims.claim(&younger, "p1", &regions), Claimed::default());
    }

    #[test]
    fn other_projects_and_disjoint_regions_do_not_clash() {
        let claims = ProjectClaims::default();
        let a = account("1", "http://k:5000/v3", demo(), &[]);
        let b = account("2", "http://k:5000/v3", demo(), &[]);
        assert_eq!(claims.claim(&a, "p1", &["R1".into()]), Claimed::default());
        assert_eq!(claims.claim(&b, "p2", &["R1".into()]), Claimed::default());
        assert_eq!(claims.claim(&b, "p1", &["R2".into()]), Claimed::default());
    }
}
