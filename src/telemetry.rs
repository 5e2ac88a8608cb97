//! Logging setup: human-readable by default, JSON lines on request;
//! `RUST_LOG` selects levels (default `info`).

use tracing_subscriber::EnvFilter;

/// Crates whose verbose logging prints the data they handle: handlebars
/// logs every page's template data (new token values among it) at DEBUG.
/// They stay quiet whatever `RUST_LOG` says; their errors reach us as
/// values and are logged by our own code.
const QUIET: &[&str] = &["handlebars=off"];

/// The filter `spec` describes, with the chatty crates held quiet.
pub fn filter(spec: &str) -> EnvFilter {
    QUIET
        .iter()
        .fold(EnvFilter::new(spec), |filter, directive| {
            filter.add_directive(directive.parse().expect("literal directive"))
        })
}

/// Whether to colour what goes to stderr: only a terminal, and never when
/// `NO_COLOR` is set (no-color.org); a file or a pipe gets plain text.
pub fn colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber writing to `file` (appended, never
/// coloured), for `oms demo`, whose terminal shows the banner instead.
pub fn init_file(file: &std::path::Path, json: bool) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .with_context(|| format!("cannot open the log file {}", file.display()))?;
    let spec = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&spec))
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(log));
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    Ok(())
}

/// Installs the global subscriber; later calls are ignored.
pub fn init(json: bool) {
    use std::io::IsTerminal as _;
    let spec = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| "info".into());
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&spec))
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_and_never_with_no_color() {
        assert!(colour(true, None));
        assert!(!colour(false, None));
        assert!(!colour(true, Some("1".into())));
        // no-color.org: an empty NO_COLOR does not count.
        assert!(colour(true, Some("".into())));
    }
}
