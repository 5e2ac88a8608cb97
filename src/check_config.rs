//! Checking a configuration file: every problem in one run, each placed at
//! its line and column. Syntax errors come from the recovering parser;
//! type errors are found by deserializing again without each key that
//! failed, so one bad value does not hide the next; then the semantic
//! checks (intervals, attempts, bounds, unique names) that the daemon
//! also runs before it accepts a file.

use std::ops::Range;

use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::{Config, Problem};

/// A problem at a byte span of `text`, or unplaced.
pub(crate) fn problem(text: &str, span: Option<Range<usize>>, message: String) -> Problem {
    let (line, column) = match span {
        Some(span) => {
            let start = span.start.min(text.len());
            let before = &text[..start];
            let line = before.matches('\n').count() + 1;
            let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
                .chars()
                .count()
                + 1;
            (Some(line), Some(column))
        }
        None => (None, None),
    };
    Problem {
        line,
        column,
        message,
    }
}

/// The file's own values (no environment yet), without the keys that
/// are of the wrong type, and every syntax and type problem in it; no
/// values when the syntax is wrong.
pub(crate) fn typed(text: &str) -> (Option<Config>, Vec<Problem>) {
    let (root, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        let mut problems: Vec<Problem> = errors
            .iter()
            .map(|e| problem(text, e.span(), e.message().to_owned()))
            .collect();
        problems.sort_by_key(|p| (p.line, p.column));
        return (None, problems);
    }
    let span = root.span();
    let mut table = root.into_inner();
    let accounts = table.remove("accounts");
    let profiles = table.remove("profiles");
    let mut problems = Vec::new();
    let root = Spanned::new(span, DeValue::Table(table));
    let mut config: Config = all_of(root, text, "", &mut problems).unwrap_or_default();
    config.accounts = each_of(accounts, "accounts", text, &mut problems);
    config.profiles = each_of(profiles, "profiles", text, &mut problems);
    (Some(config), problems)
}

/// Each table of an array of tables on its own, so a bad account does not
/// hide the next one's problems.
fn each_of<T: DeserializeOwned>(
    value: Option<Spanned<DeValue<'_>>>,
    key: &str,
    text: &str,
    problems: &mut Vec<Problem>,
) -> Vec<T> {
    let Some(value) = value else {
        return Vec::new();
    };
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| all_of(item.clone(), text, &format!("{key}[{i}]"), problems))
            .collect(),
        _ => {
            problems.push(problem(
                text,
                Some(span),
                format!("{key}: an array of tables, each under [[{key}]]"),
            ));
            Vec::new()
        }
    }
}

/// Deserializes `value`; after each error, drops the key that holds it
/// and tries again, so every bad key of the table is reported.
fn all_of<T: DeserializeOwned>(
    mut value: Spanned<DeValue<'_>>,
    text: &str,
    at: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let mut dropped: Option<String> = None;
    // Each round drops a key; the bound only guards against a round that
    // could not.
    for _ in 0..256 {
        let error = match T::deserialize(value.clone().into_deserializer()) {
            Ok(parsed) => return Some(parsed),
            Err(error) => error,
        };
        // Dropping a required key makes it missing: said once is enough.
        if let Some(key) = &dropped
            && error.message().contains(&format!("missing field `{key}`"))
        {
            return None;
        }
        let span = error.span();
        let DeValue::Table(table) = value.get_mut() else {
            problems.push(problem(text, span, located(at, error.message())));
            return None;
        };
        let holder = span.as_ref().and_then(|span| {
            table.iter().find_map(|(key, inner)| {
                let mut path = vec![key.get_ref().to_string()];
                if key.span().contains(&span.start) {
                    return Some(path);
                }
                path.extend(path_to(inner, span)?);
                Some(path)
            })
        });
        let Some(path) = holder else {
            problems.push(problem(text, span, located(at, error.message())));
            return None;
        };
        let name = path
            .iter()
            .fold(at.to_owned(), |name, key| join(&name, key));
        problems.push(problem(text, span, located(&name, error.message())));
        remove_at(table, &path);
        dropped = path.last().cloned();
    }
    None
}

/// Removes the innermost key of `path` that can be removed (an element of
/// an array cannot: the key holding the array goes).
fn remove_at(table: &mut DeTable<'_>, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    if !rest.is_empty()
        && let Some(inner) = table.get_mut(first.as_str())
        && let DeValue::Table(inner) = inner.get_mut()
    {
        remove_at(inner, rest);
        return;
    }
    table.remove(first.as_str());
}

/// `at.key`, or `key` at the top.
fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

/// The message prefixed with the key it is about; toml's "unknown field"
/// already names it.
fn located(at: &str, message: &str) -> String {
    let message = message.trim_end();
    if at.is_empty() || message.starts_with("unknown field") {
        message.to_owned()
    } else {
        format!("{at}: {message}")
    }
}

/// The keys leading from `value` to what holds `span`, if it does.
fn path_to(value: &Spanned<DeValue<'_>>, span: &Range<usize>) -> Option<Vec<String>> {
    let inside = value.span().contains(&span.start);
    match value.get_ref() {
        DeValue::Table(table) => {
            for (key, inner) in table.iter() {
                if key.span().contains(&span.start) {
                    return Some(vec![key.get_ref().to_string()]);
                }
                if let Some(mut path) = path_to(inner, span) {
                    path.insert(0, key.get_ref().to_string());
                    return Some(path);
                }
            }
            inside.then(Vec::new)
        }
        DeValue::Array(items) => {
            for item in items.iter() {
                if let Some(path) = path_to(item, span) {
                    return Some(path);
                }
            }
            inside.then(Vec::new)
        }
        _ => inside.then(Vec::new),
    }
}

/// The span of the key at `path` (dotted, with `[i]` for an element of an
/// array of tables), to place a semantic problem on its line.
pub(crate) fn span_of(text: &str, path: &str) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut found = None;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let (spanned_key, value) = table.get_key_value(key)?;
        found = Some(spanned_key.span());
        let value = match (index, value.get_ref()) {
            (Some(i), DeValue::Array(items)) => items.get(i)?,
            (Some(_), _) => return None,
            (None, _) => value,
        };
        if index.is_some() {
            found = Some(value.span());
        }
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    found
}

/// A problem placed on the key at `path`, or on the nearest enclosing one
/// that is in the file (a default is not).
pub(crate) fn at(text: &str, path: &str, message: String) -> Problem {
    let mut path = path.to_owned();
    loop {
        if let Some(span) = span_of(text, &path) {
            return problem(text, Some(span), message);
        }
        match path.rfind('.') {
            Some(dot) => path.truncate(dot),
            None => return problem(text, None, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<Problem> {
        typed(text).1
    }

    #[test]
    fn every_type_error_is_reported_with_its_line_and_column() {
        let text = "listen = 5\n\n[api]\nmax_count = \"many\"\nbody_limit = true\n\n[fleet]\npoll_interval_secs = \"3\"\nnonsense = 1\n";
        let found = problems(text);
        let placed: Vec<(Option<usize>, Option<usize>)> =
            found.iter().map(|p| (p.line, p.column)).collect();
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(placed.contains(&(Some(1), Some(10))), "{found:#?}");
        assert!(placed.contains(&(Some(4), Some(13))), "{found:#?}");
        assert!(placed.contains(&(Some(5), Some(14))), "{found:#?}");
        assert!(placed.contains(&(Some(8), Some(22))), "{found:#?}");
        assert!(placed.iter().any(|p| p.0 == Some(9)), "{found:#?}");
        assert!(
            found
                .iter()
                .any(|p| p.message.starts_with("api.max_count:")),
            "{found:#?}"
        );
    }

    #[test]
    fn each_account_is_checked_on_its_own() {
        let text = "[[accounts]]\nname = 1\nauth_url = \"https://k/v3\"\n\n[[accounts]]\nname = \"b\"\nauth_url = \"https://k/v3\"\npriority = \"high\"\n";
        let found = problems(text);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(found[0].line, Some(2));
        assert!(
            found[0].message.starts_with("accounts[0].name:"),
            "{found:#?}"
        );
        assert_eq!(found[1].line, Some(8));
        assert!(found[1].message.starts_with("accounts[1].priority:"));
    }

    #[test]
    fn a_missing_required_key_is_reported_once() {
        let found = problems("[[profiles]]\nname = 3\nmin_vcpus = 1\nmin_ram_mb = 1\n");
        assert_eq!(found.len(), 1, "{found:#?}");
    }

    #[test]
    fn every_syntax_error_is_reported() {
        let found = problems("listen = \n[api\nmax_count = 1\nx = = 2\n");
        assert!(found.len() >= 2, "{found:#?}");
        assert_eq!(found[0].line, Some(1), "{found:#?}");
    }

    #[test]
    fn a_nested_key_is_located_by_its_path() {
        let text = "[fleet]\npoll_interval_secs = -3\n\n[[accounts]]\nname = \"a\"\n\n[[accounts]]\nname = \"b\"\n[accounts.limits]\nmutating_burst = 0\n";
        assert_eq!(
            at(text, "fleet.poll_interval_secs", String::new()).line,
            Some(2)
        );
        assert_eq!(at(text, "accounts[1].name", String::new()).line, Some(8));
        assert_eq!(
            at(text, "accounts[1].limits.mutating_burst", String::new()).line,
            Some(10)
        );
        // A default is not in the file: the section is.
        assert_eq!(
            at(text, "fleet.leak_grace_secs", String::new()).line,
            Some(1)
        );
        assert_eq!(at(text, "api.max_count", String::new()).line, None);
    }
}
