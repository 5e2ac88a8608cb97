//! Nova microversions and the negotiation of the one we speak.

use std::fmt;
use std::str::FromStr;

/// A compute API microversion such as 2.52.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Microversion {
    /// Always 2 for the compute API v2.1.
    pub major: u16,
    /// The microversion proper.
    pub minor: u16,
}

impl Microversion {
    /// Builds `major.minor`.
    pub const fn new(major: u16, minor: u16) -> Self {
        Microversion { major, minor }
    }
}

/// Oldest microversion this client can work with (the v2.1 base).
pub const OLDEST_SUPPORTED: Microversion = Microversion::new(2, 1);
/// Newest microversion whose answers this client has been checked against.
pub const NEWEST_SUPPORTED: Microversion = Microversion::new(2, 100);
/// Servers can be tagged in the create call from here on.
pub const TAGS_AT_CREATE: Microversion = Microversion::new(2, 52);
/// Server tags exist from here on (`PUT /servers/{id}/tags/{tag}`).
pub const SERVER_TAGS: Microversion = Microversion::new(2, 26);
/// `networks` is mandatory in a create call from here on.
pub const NETWORKS_REQUIRED: Microversion = Microversion::new(2, 37);
/// Newest microversion at which Nova still generates key pairs.
pub const LAST_KEYPAIR_GENERATION: Microversion = Microversion::new(2, 91);

impl fmt::Display for Microversion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A string that is not a microversion.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a microversion: {0:?}")]
pub struct BadMicroversion(String);

impl FromStr for Microversion {
    type Err = BadMicroversion;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim().trim_start_matches('v');
        let (major, minor) = trimmed
            .split_once('.')
            .ok_or_else(|| BadMicroversion(text.to_owned()))?;
        let parse = |part: &str| {
            part.parse::<u16>()
                .map_err(|_| BadMicroversion(text.to_owned()))
        };
        Ok(Microversion::new(parse(major)?, parse(minor)?))
    }
}

/// Picks the newest microversion both sides support, given the server's
/// advertised range (`min_version`, `version`); empty strings, as a legacy
/// endpoint sends, mean the server has no microversions: 2.1 only.
pub fn negotiate(server_min: &str, server_max: &str) -> Option<Microversion> {
    let server_min = server_min.parse().unwrap_or(OLDEST_SUPPORTED);
    let server_max = server_max.parse().unwrap_or(OLDEST_SUPPORTED);
    let chosen = server_max.min(NEWEST_SUPPORTED);
    (chosen >= server_min.max(OLDEST_SUPPORTED)).then_some(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_numerically_not_lexically() {
        let a: Microversion = "2.9".parse().unwrap();
        let b: Microversion = "2.10".parse().unwrap();
        assert!(a < b);
        assert_eq!(
            "2.104".parse::<Microversion>().unwrap().to_string(),
            "2.104"
        );
        assert!("two".parse::<Microversion>().is_err());
    }

    #[test]
    fn negotiates_newest_common_version() {
        assert_eq!(negotiate("2.1", "2.104"), Some(NEWEST_SUPPORTED));
        assert_eq!(negotiate("2.1", "2.60"), Some(Microversion::new(2, 60)));
        assert_eq!(negotiate("", ""), Some(OLDEST_SUPPORTED));
        assert_eq!(negotiate("2.101", "2.110"), None);
    }
}
