//! Debian's `promtool`, where the `prometheus` package is installed;
//! elsewhere the checks are skipped, unless `REQUIRE_PROMTOOL` is set (CI
//! installs it and sets it, so they cannot be skipped there).

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `promtool ARGS` (with `stdin` when given) and asserts success.
pub fn check(args: &[&str], stdin: Option<&str>) {
    let spawned = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) if std::env::var_os("REQUIRE_PROMTOOL").is_some() => {
            panic!("promtool is required (REQUIRE_PROMTOOL) but did not start: {e}")
        }
        Err(_) => return,
    };
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool {}: {}{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        stdin.unwrap_or_default()
    );
}
