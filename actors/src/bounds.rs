//! Input bounds: every string, number and list that comes from outside
//! (the API, the pages, the configuration file) has a limit. They are
//! checked where the fleet accepts a thing, so no way in can store what
//! another would refuse. Messages name the field and the limit, never the
//! value (it may be long, hostile or a secret).

use std::time::Duration;

/// Longest name of an account, profile or token.
pub const MAX_NAME: usize = 64;
/// Longest free text: a region, image, flavor, project or user name.
pub const MAX_TEXT: usize = 255;
/// Most entries in a list (regions, networks, pins, placement hints).
pub const MAX_LIST: usize = 64;
/// Longest URL.
pub const MAX_URL: usize = 2048;
/// Longest secret (password, application-credential secret).
pub const MAX_SECRET: usize = 4096;
/// Longest lease a launch may ask for.
pub const MAX_LEASE: Duration = Duration::from_secs(366 * 86_400);
/// Longest deadline a launch may ask for.
pub const MAX_DEADLINE: Duration = Duration::from_secs(30 * 86_400);
/// Most attempts per instance.
pub const MAX_ATTEMPTS: u32 = 1000;

/// A name: 1 to `MAX_NAME` of letters, digits, `-`, `_` and `.`.
pub fn name(field: &str, value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NAME
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    ok.then_some(())
        .ok_or_else(|| format!("{field}: 1 to {MAX_NAME} of letters, digits, - _ ."))
}

/// Free text of 1 to `max` bytes without control characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() || value.len() > max {
        return Err(format!("{field}: 1 to {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{field}: no control characters"));
    }
    Ok(())
}

/// At most `MAX_LIST` entries, each text of at most `MAX_TEXT`.
pub fn list<'a>(field: &str, values: impl IntoIterator<Item = &'a String>) -> Result<(), String> {
    let mut count = 0;
    for value in values {
        count += 1;
        if count > MAX_LIST {
            return Err(format!("{field}: at most {MAX_LIST} entries"));
        }
        text(field, value, MAX_TEXT)?;
    }
    Ok(())
}

/// An http(s) URL with a host, without credentials in it (they would be
/// stored and shown in clear) and without a fragment.
pub fn url(field: &str, value: &url::Url) -> Result<(), String> {
    if !matches!(value.scheme(), "http" | "https") || value.host().is_none() {
        return Err(format!("{field}: an http or https URL with a host"));
    }
    if !value.username().is_empty() || value.password().is_some() {
        return Err(format!(
            "{field}: no user or password in the URL; credentials go in their own fields"
        ));
    }
    if value.fragment().is_some() {
        return Err(format!("{field}: no #fragment"));
    }
    if value.as_str().len() > MAX_URL {
        return Err(format!("{field}: at most {MAX_URL} characters"));
    }
    Ok(())
}

/// `value` seconds, from 1 up to `max`.
pub fn seconds(field: &str, value: u64, max: Duration) -> Result<(), String> {
    if value == 0 || value > max.as_secs() {
        return Err(format!("{field}: 1 to {} seconds", max.as_secs()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_text_and_lists_are_bounded() {
        assert!(name("name", "north-1_a.b").is_ok());
        for bad in ["", "a b", "x\0", &"n".repeat(MAX_NAME + 1)] {
            assert!(name("name", bad).is_err(), "{bad:?}");
        }
        assert!(text("image", "Ubuntu 24.04 (Noble)", MAX_TEXT).is_ok());
        for bad in ["", "a\0b", "a\nb", &"i".repeat(MAX_TEXT + 1)] {
            assert!(text("image", bad, MAX_TEXT).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..10_000).map(|i| format!("r{i}")).collect();
        let error = list("regions", &many).unwrap_err();
        assert_eq!(error, format!("regions: at most {MAX_LIST} entries"));
        assert!(list("regions", &many[..MAX_LIST]).is_ok());
    }

    #[test]
    fn urls_carry_no_credentials_and_no_fragment() {
        let parse = |u: &str| url::Url::parse(u).unwrap();
        assert!(url("auth_url", &parse("https://keystone.example:5000/v3")).is_ok());
        for bad in [
            "http://user:pw@keystone.example/v3",
            "http://user@keystone.example/v3",
            "https://keystone.example/v3#x",
            "ftp://keystone.example/v3",
            "file:///etc/passwd",
        ] {
            let error = url("auth_url", &parse(bad)).unwrap_err();
            assert!(!error.contains("pw"), "{error}");
        }
    }

    #[test]
    fn seconds_are_positive_and_bounded() {
        assert!(seconds("deadline", 60, MAX_DEADLINE).is_ok());
        assert!(seconds("deadline", 0, MAX_DEADLINE).is_err());
        assert!(seconds("deadline", u64::MAX, MAX_DEADLINE).is_err());
    }
}
