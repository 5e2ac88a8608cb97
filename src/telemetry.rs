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

/// Installs the global subscriber; later calls are ignored.
pub fn init(json: bool) {
    let spec = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(&spec))
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
