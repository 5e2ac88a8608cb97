//! Where each kind of record lives in etcd: one prefix per kind under the
//! cluster's prefix, ids in their natural order (instance ids begin with
//! their request's time-ordered id, so a range read returns them oldest
//! first), components escaped so that a `/` in a name cannot forge another
//! record's key.

/// Everything the cluster keeps under one prefix (`/openmultistack/` by
/// default), so that several clusters can share an etcd.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// What a key under the prefix names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An account by id.
    Account(String),
    /// A profile by name.
    Profile(String),
    /// A key pair: client, name.
    KeyPair(String, String),
    /// A launch request by id.
    Request(String),
    /// An idempotency key's reservation (client, key): the request id.
    Idempotency(String, String),
    /// An instance by id.
    Instance(String),
    /// An instance's event at a position of its timeline.
    Event(String, usize),
    /// An API token by id.
    Token(String),
    /// A shared document by name.
    Shared(String),
    /// The cluster's own bookkeeping (leader, members, meta).
    Cluster,
}

/// Escapes `%` and `/` so that a component stays one path segment.
fn escape(component: &str) -> String {
    component.replace('%', "%25").replace('/', "%2F")
}

fn unescape(segment: &str) -> String {
    segment.replace("%2F", "/").replace("%25", "%")
}

impl Keys {
    /// Keys under `prefix`, which gains a trailing `/` if it lacks one.
    pub fn new(prefix: &str) -> Keys {
        let mut prefix = prefix.to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Keys { prefix }
    }

    /// The cluster's prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, kind: &str, parts: &[&str]) -> String {
        let mut key = format!("{}{kind}/", self.prefix);
        let escaped: Vec<String> = parts.iter().map(|p| escape(p)).collect();
        key.push_str(&escaped.join("/"));
        key
    }

    /// An account.
    pub fn account(&self, id: &str) -> String {
        self.key("accounts", &[id])
    }
    /// A profile.
    pub fn profile(&self, name: &str) -> String {
        self.key("profiles", &[name])
    }
    /// A key pair.
    pub fn keypair(&self, client: &str, name: &str) -> String {
        self.key("keypairs", &[client, name])
    }
    /// A request.
    pub fn request(&self, id: &str) -> String {
        self.key("requests", &[id])
    }
    /// An idempotency key's reservation.
    pub fn idempotency(&self, client: &str, key: &str) -> String {
        self.key("idempotency", &[client, key])
    }
    /// An instance.
    pub fn instance(&self, id: &str) -> String {
        self.key("instances", &[id])
    }
    /// One event; positions are zero-padded so they sort in order.
    pub fn event(&self, instance_id: &str, seq: usize) -> String {
        self.key("events", &[instance_id, &format!("{seq:08}")])
    }
    /// Every event of an instance.
    pub fn events_of(&self, instance_id: &str) -> String {
        format!("{}/", self.key("events", &[instance_id]))
    }
    /// A token.
    pub fn token(&self, id: &str) -> String {
        self.key("tokens", &[id])
    }
    /// A shared document.
    pub fn shared(&self, name: &str) -> String {
        self.key("shared", &[name])
    }
    /// The leader's key, bound to its lease.
    pub fn leader(&self) -> String {
        format!("{}cluster/leader", self.prefix)
    }
    /// A member's presence, bound to its lease.
    pub fn member(&self, name: &str) -> String {
        self.key("cluster/members", &[name])
    }
    /// Every member.
    pub fn members(&self) -> String {
        format!("{}cluster/members/", self.prefix)
    }
    /// The cluster's id, written once by the first daemon.
    pub fn cluster_id(&self) -> String {
        format!("{}cluster/id", self.prefix)
    }
    /// A sealed known text: daemons with another sealing key refuse to
    /// start instead of writing secrets no other member can open.
    pub fn seal_check(&self) -> String {
        format!("{}cluster/seal-check", self.prefix)
    }
    /// The writes' sequence: every leader write also puts who wrote it,
    /// so etcd's history shows which daemon wrote each revision.
    pub fn writer(&self) -> String {
        format!("{}cluster/writer", self.prefix)
    }

    /// What `key` names; `None` for a key outside the prefix or unknown.
    pub fn parse(&self, key: &str) -> Option<Record> {
        let rest = key.strip_prefix(&self.prefix)?;
        let (kind, rest) = rest.split_once('/')?;
        let parts: Vec<String> = rest.split('/').map(unescape).collect();
        let one = || (parts.len() == 1).then(|| parts[0].clone());
        match kind {
            "accounts" => one().map(Record::Account),
            "profiles" => one().map(Record::Profile),
            "requests" => one().map(Record::Request),
            "instances" => one().map(Record::Instance),
            "tokens" => one().map(Record::Token),
            "shared" => one().map(Record::Shared),
            "keypairs" if parts.len() == 2 => {
                Some(Record::KeyPair(parts[0].clone(), parts[1].clone()))
            }
            "idempotency" if parts.len() == 2 => {
                Some(Record::Idempotency(parts[0].clone(), parts[1].clone()))
            }
            "events" if parts.len() == 2 => {
                Some(Record::Event(parts[0].clone(), parts[1].parse().ok()?))
            }
            "cluster" => Some(Record::Cluster),
            _ => None,
        }
    }
}

/// The end of the range of keys that begin with `prefix` (etcd's
/// "prefix end": the prefix with its last byte incremented).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_parses_back_to_what_it_names() {
        let keys = Keys::new("/oms");
        assert_eq!(keys.prefix(), "/oms/");
        let cases = [
            (keys.account("a1"), Record::Account("a1".into())),
            (keys.profile("small"), Record::Profile("small".into())),
            (
                keys.keypair("ci/x", "k%1"),
                Record::KeyPair("ci/x".into(), "k%1".into()),
            ),
            (keys.request("r1"), Record::Request("r1".into())),
            (
                keys.idempotency("ci", "a/b"),
                Record::Idempotency("ci".into(), "a/b".into()),
            ),
            (keys.instance("r1-0"), Record::Instance("r1-0".into())),
            (keys.event("r1-0", 12), Record::Event("r1-0".into(), 12)),
            (keys.token("t"), Record::Token("t".into())),
            (keys.shared("board"), Record::Shared("board".into())),
            (keys.leader(), Record::Cluster),
            (keys.member("d1"), Record::Cluster),
        ];
        for (key, record) in cases {
            assert_eq!(keys.parse(&key), Some(record), "{key}");
        }
        assert_eq!(keys.parse("/other/accounts/a1"), None);
    }

    #[test]
    fn a_slash_in_a_name_cannot_reach_another_record() {
        let keys = Keys::new("/oms/");
        assert_eq!(keys.keypair("a/b", "c"), "/oms/keypairs/a%2Fb/c");
        assert_ne!(keys.keypair("a/b", "c"), keys.keypair("a", "b/c"));
    }

    #[test]
    fn events_sort_in_timeline_order_and_stay_under_their_instance() {
        let keys = Keys::new("/oms/");
        assert!(keys.event("i", 9) < keys.event("i", 10));
        assert!(keys.event("i", 0).starts_with(&keys.events_of("i")));
        assert!(!keys.event("i-1", 0).starts_with(&keys.events_of("i")));
    }

    #[test]
    fn the_prefix_end_bounds_exactly_the_prefix() {
        assert_eq!(prefix_end("/oms/"), b"/oms0".to_vec());
        assert!(b"/oms/zzz".as_slice() < prefix_end("/oms/").as_slice());
    }
}
