//! The command-line client against a running API: clouds.yaml import
//! (password and application-credential clouds, several regions,
//! secure.yaml), and launch / list / delete.

use std::process::{Command, Output};
use std::time::Duration;

use crate::support::api::{Harness, start_with};
use crate::support::eventually;
use oms_sim::{AppCredentialConfig, UserConfig};
use oms_web::ApiConfig;

/// Runs `oms` at its most verbose logging: the token it was given never
/// shows in what it writes.
fn oms(h: &Harness, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_oms"))
        .args(args)
        .env("OMS_URL", &h.base)
        .env("OMS_TOKEN", &h.admin)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    for (stream, text) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        assert!(
            !String::from_utf8_lossy(text).contains(&h.admin),
            "oms {args:?} wrote its token to {stream}"
        );
        // A pipe is no terminal: no colour codes.
        assert!(
            !text.contains(&0x1b),
            "oms {args:?} wrote colour codes to {stream}"
        );
    }
    output
}

fn account_names(h: &Harness) -> Vec<String> {
    let mut names: Vec<String> = h
        .store
        .list_accounts()
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clouds_yaml_imports_password_and_application_credential_clouds() {
    // The harness registers the demo projects; these clouds are other
    // projects of the same providers.
    let h = start_with(ApiConfig::default(), |p| {
        p.users.push(UserConfig {
            name: "ops".into(),
            password: "secret".into(),
            project: "ops".into(),
            ..UserConfig::default()
        });
        p.application_credentials.push(AppCredentialConfig {
            id: "ac-ci".into(),
            name: "ci".into(),
            secret: "ac-secret".into(),
            user: "ops".into(),
        })
    })
    .await;
    let north = h.sim.providers()[0].auth_url.clone();
    let south = h.sim.providers()[1].auth_url.clone();
    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    let secure = dir.path().join("secure.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  prod-north:\n    auth:\n      auth_url: {north}\n      username: ops\n      project_name: ops\n      user_domain_name: Default\n      project_domain_name: Default\n    regions:\n      - north-1\n      - name: north-2\n    identity_api_version: 3\n  ci-south:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {south}\n      application_credential_id: ac-ci\n    region_name: south-1\n"
        ),
    )
    .unwrap();
    std::fs::write(
        &secure,
        "clouds:\n  prod-north:\n    auth:\n      password: secret\n  ci-south:\n    auth:\n      application_credential_secret: ac-secret\n",
    )
    .unwrap();

    // Without secure.yaml the secrets are missing: nothing is imported.
    let before = account_names(&h);
    let failed = tokio::task::spawn_blocking({
        let (base, admin, clouds) = (h.base.clone(), h.admin.clone(), clouds.clone());
        move || {
            Command::new(env!("CARGO_BIN_EXE_oms"))
                .args(["account", "import-clouds", clouds.to_str().unwrap()])
                .env("OMS_URL", base)
                .env("OMS_TOKEN", admin)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("nothing imported"));
    assert_eq!(account_names(&h), before);

    let malformed = dir.path().join("bad.yaml");
    std::fs::write(&malformed, "clouds:\n  x: [\n").unwrap();
    let bad = oms(
        &h,
        &["account", "import-clouds", malformed.to_str().unwrap()],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not valid YAML"));
    assert_eq!(account_names(&h), before);

    let imported = oms(
        &h,
        &[
            "account",
            "import-clouds",
            clouds.to_str().unwrap(),
            "--secure",
            secure.to_str().unwrap(),
        ],
    );
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert_eq!(
        account_names(&h),
        vec!["ci-south", "north", "prod-north", "south"]
    );
    let accounts = h.store.list_accounts().unwrap();
    let prod = accounts.iter().find(|a| a.name == "prod-north").unwrap();
    assert_eq!(prod.regions, vec!["north-1", "north-2"]);
    let ci = accounts.iter().find(|a| a.name == "ci-south").unwrap();
    assert_eq!(ci.regions, vec!["south-1"]);
    // The imported accounts work.
    eventually(Duration::from_secs(20), "imported regions up", || async {
        let up = h
            .fleet
            .regions()
            .iter()
            .filter(|r| (r.account == "prod-north" || r.account == "ci-south") && r.connected)
            .count();
        (up == 3).then_some(())
    })
    .await;
    // Importing again would collide: nothing is imported.
    let again = oms(
        &h,
        &[
            "account",
            "import-clouds",
            clouds.to_str().unwrap(),
            "--secure",
            secure.to_str().unwrap(),
        ],
    );
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains("nothing imported") && said.contains("an account named prod-north exists"),
        "{said}"
    );
    assert_eq!(account_names(&h).len(), 4);

    // A cloud on a project another account holds (registered under
    // another name) is refused, and so is the rest of its file.
    let twice = dir.path().join("twice.yaml");
    std::fs::write(
        &twice,
        format!(
            "clouds:\n  fresh:\n    auth:\n      auth_url: {south}\n      username: admin\n      project_name: admin\n      password: secret\n  north-again:\n    auth:\n      auth_url: {north}\n      username: demo\n      project_name: demo\n      password: secret\n"
        ),
    )
    .unwrap();
    let refused = oms(&h, &["account", "import-clouds", twice.to_str().unwrap()]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("nothing imported")
            && said.contains("north-again: 409")
            && said.contains("same project as account north"),
        "{said}"
    );
    assert_eq!(account_names(&h).len(), 4);
}

/// Like [`oms`], run in `dir` (where a generated key is written).
fn oms_in(h: &Harness, dir: &std::path::Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_oms"))
        .args(args)
        .current_dir(dir)
        .env("OMS_URL", &h.base)
        .env("OMS_TOKEN", &h.admin)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains(&h.admin)
            && !String::from_utf8_lossy(&output.stderr).contains(&h.admin)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_wait_list_show_and_delete_from_the_command_line() {
    let h = start_with(ApiConfig::default(), |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    // No key flag: the generated key goes to a file named for the request.
    let launched = oms_in(
        &h,
        dir.path(),
        &[
            "launch",
            "--profile",
            "small",
            "--count",
            "2",
            "--name-prefix",
            "cli",
            "--wait",
            "-f",
            "json",
        ],
    );
    assert!(launched.status.success(), "{}", stderr(&launched));
    let instances: Vec<serde_json::Value> = serde_json::from_str(&stdout(&launched)).unwrap();
    assert_eq!(instances.len(), 2);
    assert!(
        instances.iter().all(|i| i["status"] == "active"),
        "{instances:?}"
    );
    // Not a terminal: a line per change, no progress bar.
    let progress = stderr(&launched);
    assert!(
        progress.lines().any(|l| l.contains(" active ")),
        "{progress}"
    );
    let request = instances[0]["request_id"].as_str().unwrap();
    let key = dir.path().join(format!("oms-{request}.key"));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        progress.contains(&format!("oms-{request}.key")),
        "{progress}"
    );
    let private = std::fs::read_to_string(&key).unwrap();
    assert!(private.contains("OPENSSH PRIVATE KEY"));
    let key_body: String = private
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    for stream in [stdout(&launched), progress] {
        let text: String = stream.lines().collect();
        assert!(
            !text.contains(&key_body),
            "the private key went to a stream"
        );
    }
    let ids: Vec<&str> = instances
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();

    // A table with a header, one row per instance.
    let listed = stdout(&oms_in(&h, dir.path(), &["list"]));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    for header in [
        "ID", "NAME", "STATUS", "PROVIDER", "REGION", "ADDRESS", "CREATED",
    ] {
        assert!(lines[0].contains(header), "{listed}");
    }
    let yaml: Vec<serde_json::Value> =
        serde_yaml_ng::from_str(&stdout(&oms_in(&h, dir.path(), &["list", "-f", "yaml"]))).unwrap();
    assert_eq!(yaml.len(), 2);

    let shown = oms_in(&h, dir.path(), &["show", ids[0]]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let shown = stdout(&shown);
    assert!(shown.contains("FIELD") && shown.contains("TIME"), "{shown}");
    assert!(shown.contains("attempt 1 scheduled"), "{shown}");
    let detail: serde_json::Value = serde_json::from_str(&stdout(&oms_in(
        &h,
        dir.path(),
        &["show", ids[0], "-f", "json"],
    )))
    .unwrap();
    assert_eq!(detail["id"], ids[0]);
    assert!(detail["events"].as_array().unwrap().len() >= 3);

    let deleted = oms_in(&h, dir.path(), &["delete", ids[0], ids[1]]);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(stdout(&deleted).contains("deleting"));
    eventually(Duration::from_secs(30), "deleted and hidden", || async {
        let listed = stdout(&oms_in(&h, dir.path(), &["list"]));
        (listed.lines().count() == 1).then_some(())
    })
    .await;
    let all = stdout(&oms_in(&h, dir.path(), &["list", "--all"]));
    assert_eq!(
        all.lines().filter(|l| l.contains(" deleted")).count(),
        2,
        "{all}"
    );

    // --no-key: no key is generated, none is written.
    let keyless = oms_in(
        &h,
        dir.path(),
        &["launch", "--profile", "small", "--no-key", "-f", "json"],
    );
    assert!(keyless.status.success(), "{}", stderr(&keyless));
    let answer: serde_json::Value = serde_json::from_str(&stdout(&keyless)).unwrap();
    assert!(answer.get("private_key").is_none(), "{answer}");
    let keys = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(keys, 1, "one key file, from the first launch");

    let without_token = Command::new(env!("CARGO_BIN_EXE_oms"))
        .args(["list"])
        .env_remove("OMS_TOKEN")
        .output()
        .unwrap();
    assert!(stderr(&without_token).contains("OMS_TOKEN"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_wait_exits_non_zero_when_an_instance_fails() {
    let h = start_with(ApiConfig::default(), |p| {
        for region in &mut p.regions {
            region.faults.build_error_rate = 1.0;
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let failed = oms_in(
        &h,
        dir.path(),
        &[
            "launch",
            "--profile",
            "small",
            "--max-attempts",
            "1",
            "--no-key",
            "--wait",
        ],
    );
    assert_eq!(failed.status.code(), Some(1), "{}", stderr(&failed));
    assert!(
        stderr(&failed).contains("1 of 1 instance(s) failed"),
        "{}",
        stderr(&failed)
    );
    assert!(stdout(&failed).contains("failed"), "{}", stdout(&failed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regions_profiles_and_accounts_from_the_command_line() {
    let h = start_with(ApiConfig::default(), |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let regions = stdout(&oms_in(&h, dir.path(), &["regions"]));
    let header = regions.lines().next().unwrap();
    for column in ["PROVIDER", "REGION", "HEALTH", "QUOTA", "LATENCY"] {
        assert!(header.contains(column), "{regions}");
    }
    assert!(
        regions.lines().skip(1).all(|l| l.contains("healthy")),
        "{regions}"
    );
    assert!(regions.contains("0/20"), "{regions}");

    let accounts = stdout(&oms_in(&h, dir.path(), &["account", "list"]));
    assert!(
        accounts.lines().next().unwrap().contains("PROJECT"),
        "{accounts}"
    );
    let north = accounts.lines().find(|l| l.starts_with("north")).unwrap();
    assert!(
        north.contains("127.0.0.1") && north.contains("demo"),
        "{accounts}"
    );

    let add = |extra: &[&str]| {
        let mut args = vec![
            "profile",
            "add",
            "tiny",
            "--min-vcpus",
            "1",
            "--min-ram-mb",
            "64",
            "--image",
            "cirros-fake",
        ];
        args.extend_from_slice(extra);
        oms_in(&h, dir.path(), &args)
    };
    assert!(add(&[]).status.success());
    let again = add(&[]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("--replace") || stderr(&again).contains("PUT"),
        "{}",
        stderr(&again)
    );
    assert!(add(&["--replace", "--min-disk-gb", "2"]).status.success());
    let profiles = stdout(&oms_in(&h, dir.path(), &["profile", "list"]));
    let tiny = profiles.lines().find(|l| l.starts_with("tiny")).unwrap();
    assert!(tiny.split_whitespace().any(|c| c == "2"), "{profiles}");
    assert!(
        oms_in(&h, dir.path(), &["profile", "delete", "tiny"])
            .status
            .success()
    );
    assert_eq!(
        oms_in(&h, dir.path(), &["profile", "delete", "tiny"])
            .status
            .code(),
        Some(4)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_say_what_went_wrong() {
    let h = start_with(ApiConfig::default(), |_| {}).await;
    let code = |output: &Output| output.status.code();
    // Usage.
    assert_eq!(code(&oms(&h, &["list", "--no-such-flag"])), Some(2));
    // Unauthorized: no token, or one the API does not know.
    let without = Command::new(env!("CARGO_BIN_EXE_oms"))
        .args(["list", "--url", &h.base])
        .env_remove("OMS_TOKEN")
        .output()
        .unwrap();
    assert_eq!(code(&without), Some(3));
    assert!(String::from_utf8_lossy(&without.stderr).contains("OMS_TOKEN"));
    let wrong = oms(&h, &["list", "--token", "oms_not-a-token"]);
    assert_eq!(
        code(&wrong),
        Some(3),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
    // Not found.
    let missing = oms(&h, &["delete", "01a23959acca71a69931dfaff59face0-00000"]);
    assert_eq!(
        code(&missing),
        Some(4),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    // Unavailable: nothing listens there (the flag beats the variable).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = oms(&h, &["list", "--url", &url]);
    assert_eq!(code(&unreachable), Some(5));
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach"));
    // And success.
    assert_eq!(code(&oms(&h, &["list"])), Some(0));
}

#[test]
fn token_commands_refuse_a_state_directory_that_is_not_there() {
    let dir = std::env::temp_dir().join(format!("oms-no-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_oms"))
            .args(args)
            .args(["--state-dir", dir.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let listed = run(&["token", "list"]);
    assert_eq!(listed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&listed.stderr).contains("no state directory"));
    assert!(!dir.exists(), "a mistyped path made a store");
    let created = run(&["token", "create", "--name", "ci", "--create"]);
    assert!(created.status.success(), "{created:?}");
    assert!(String::from_utf8_lossy(&created.stdout).starts_with("oms_"));
    let listed = run(&["token", "list"]);
    assert!(listed.status.success());
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(table.lines().next().unwrap().starts_with("ID"), "{table}");
    let yaml = run(&["token", "list", "-f", "yaml"]);
    let tokens: Vec<serde_json::Value> = serde_yaml_ng::from_slice(&yaml.stdout).unwrap();
    assert_eq!(tokens[0]["name"], "ci");
    assert!(tokens[0].get("hash").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completions_and_the_manual_page_are_generated() {
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_oms"))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        assert!(
            script.contains("launch") && script.contains("oms"),
            "{shell}: {script}"
        );
    }
    let man = run(&["man"]);
    assert!(man.contains(".TH oms"), "{man}");
    assert!(man.contains("Exit codes"), "{man}");
}
