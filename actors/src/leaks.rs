//! Leak detection: servers and key pairs that carry this daemon's marks
//! but that no live instance accounts for. A thing is collected only on a
//! second sighting at least a grace period after the first, because
//! listings can lag creates and the store can lag the provider.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// Something of ours seen at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Sighting {
    /// A server with our daemon tag, and its attempt tag if any.
    Server {
        /// Nova id.
        id: String,
        /// Attempt id from its `oms-a-` tag.
        attempt: Option<String>,
    },
    /// A key pair named `oms-k-<attempt>`.
    Keypair {
        /// Key pair name.
        name: String,
        /// The attempt in its name.
        attempt: String,
    },
}

impl Sighting {
    fn key(&self) -> String {
        match self {
            Sighting::Server { id, .. } => format!("s:{id}"),
            Sighting::Keypair { name, .. } => format!("k:{name}"),
        }
    }
}

/// Remembers first sightings between scans.
#[derive(Debug, Default)]
pub struct LeakWatch {
    first_seen: HashMap<String, Instant>,
}

impl LeakWatch {
    /// Feeds one scan; returns what is to be collected now. `known` says
    /// whether a live instance accounts for a sighting. Suspects not seen
    /// again, or known now, are forgotten.
    pub fn scan(
        &mut self,
        seen: Vec<Sighting>,
        known: impl Fn(&Sighting) -> bool,
        now: Instant,
        grace: Duration,
    ) -> Vec<Sighting> {
        let mut next = HashMap::new();
        let mut leaks = Vec::new();
        for sighting in seen {
            if known(&sighting) {
                continue;
            }
            let key = sighting.key();
            let first = self.first_seen.get(&key).copied().unwrap_or(now);
            if now.saturating_duration_since(first) >= grace && self.first_seen.contains_key(&key) {
                leaks.push(sighting);
            } else {
                next.insert(key, first);
            }
        }
        self.first_seen = next;
        leaks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: &str, attempt: Option<&str>) -> Sighting {
        Sighting::Server {
            id: id.into(),
            attempt: attempt.map(str::to_owned),
        }
    }

    #[test]
    fn collected_only_on_a_second_sighting_after_the_grace() {
        let mut watch = LeakWatch::default();
        let now = Instant::now();
        let grace = Duration::from_secs(60);
        let unknown = |_: &Sighting| false;
        assert!(
            watch
                .scan(vec![server("a", None)], unknown, now, grace)
                .is_empty()
        );
        let early = now + Duration::from_secs(30);
        assert!(
            watch
                .scan(vec![server("a", None)], unknown, early, grace)
                .is_empty()
        );
        let late = now + Duration::from_secs(61);
        assert_eq!(
            watch.scan(vec![server("a", None)], unknown, late, grace),
            vec![server("a", None)]
        );
    }

    #[test]
    fn known_things_and_vanished_suspects_are_forgotten() {
        let mut watch = LeakWatch::default();
        let now = Instant::now();
        let grace = Duration::from_secs(1);
        watch.scan(
            vec![server("a", Some("x")), server("b", None)],
            |_| false,
            now,
            grace,
        );
        // "a" became known (its create finished), "b" vanished.
        let later = now + Duration::from_secs(5);
        let known =
            |s: &Sighting| matches!(s, Sighting::Server { attempt: Some(a), .. } if a == "x");
        assert!(
            watch
                .scan(vec![server("a", Some("x"))], known, later, grace)
                .is_empty()
        );
        // "b" seen again later starts over.
        assert!(
            watch
                .scan(vec![server("b", None)], |_| false, later, grace)
                .is_empty()
        );
        let keypair = Sighting::Keypair {
            name: "oms-k-z".into(),
            attempt: "z".into(),
        };
        watch.scan(vec![keypair.clone()], |_| false, later, grace);
        assert_eq!(
            watch.scan(vec![keypair.clone()], |_| false, later + grace, grace),
            vec![keypair]
        );
    }
}
