//! Command-line interface of `oms`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use oms_actors::model::Role;
use oms_actors::tokens::NewToken;
use secrecy::ExposeSecret;

use anyhow::Context as _;

use crate::config::{Config, DEFAULT_CONFIG};
use crate::state::{DEFAULT_STATE_DIR, open_store};

/// What `oms --help` says after the commands.
const EXIT_CODES: &str = "Exit codes: 0 success; 1 failure (a refused request, \
problems in a configuration); 2 usage (a flag or argument wrong); 3 unauthorized \
(no token, or the API refused it); 4 not found; 5 unavailable (the API could not \
be reached, or failed).";

/// Pools many OpenStack accounts into one source of compute.
#[derive(Debug, Parser)]
#[command(name = "oms", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "OMS_LOG_JSON")]
    pub log_json: bool,
    /// The API's base URL, for the commands that call it.
    #[arg(
        long,
        global = true,
        env = "OMS_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// An API token, for the commands that call the API (prefer the
    /// variable: a flag shows in the process list).
    #[arg(long, global = true, env = "OMS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// How listings and answers are printed: a table with a header, or
    /// the API's own JSON or YAML for scripts.
    #[arg(short = 'f', long, global = true, value_enum, default_value_t)]
    pub format: crate::output::Format,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: the actor tree and the REST API.
    Serve {
        /// Configuration file; the default may be absent.
        #[arg(long, env = "OMS_CONFIG")]
        config: Option<PathBuf>,
        /// Overrides `state_dir` of the configuration.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Overrides `listen` of the configuration.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Check a configuration file: every problem, each as FILE:LINE:COLUMN.
    ///
    /// Relative secret files are looked for in $CREDENTIALS_DIRECTORY when
    /// set, else in credentials/ beside the file, then beside the file.
    /// When none of those is a credentials directory, a missing secret is
    /// a note (systemd's LoadCredential= will provide it), not a problem.
    /// Exits 1 when there is a problem.
    CheckConfig {
        /// The file.
        #[arg(default_value = DEFAULT_CONFIG)]
        file: PathBuf,
        /// Look for the secret files here (where the unit's LoadCredential=
        /// lines take them from).
        #[arg(long, value_name = "DIR")]
        credentials: Option<PathBuf>,
    },
    /// Run the daemon over an embedded simulator, with an admin token.
    ///
    /// Logs go to a file it names (--verbose: to the terminal), so the
    /// banner with the token, the simulated providers and a ready
    /// clouds.yaml stays on screen. The store is in memory unless
    /// --state-dir is given.
    Demo {
        /// Address of the REST API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Keep the store (tokens, accounts, profiles, instances), the log
        /// and clouds.yaml here across runs.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Log to the terminal instead of the file.
        #[arg(long)]
        verbose: bool,
    },
    /// Run the OpenStack simulator (3 providers × 2 regions by default).
    Sim {
        /// TOML file describing providers, regions, quotas and faults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Launch instances through the API.
    ///
    /// Without --public-key-file a key pair is generated and its private
    /// key written to --key-out FILE, or to oms-<request id>.key in the
    /// current directory (mode 0600); --no-key boots without a key.
    Launch {
        /// Profile name.
        #[arg(long)]
        profile: String,
        /// How many.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Prefix of instance names.
        #[arg(long)]
        name_prefix: Option<String>,
        /// Your OpenSSH public key; otherwise one is generated.
        #[arg(long, conflicts_with_all = ["key_out", "no_key"])]
        public_key_file: Option<PathBuf>,
        /// Where to write a generated private key (created 0600; it must
        /// not exist).
        #[arg(long, conflicts_with = "no_key")]
        key_out: Option<PathBuf>,
        /// Boot without any key pair.
        #[arg(long)]
        no_key: bool,
        /// Attempts per instance (the daemon's default otherwise).
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Seconds after which instances not yet active fail.
        #[arg(long, value_name = "SECS")]
        deadline: Option<u64>,
        /// Wait until every instance is active or failed: a progress bar
        /// on a terminal, a line per change otherwise; exits 1 if any
        /// failed.
        #[arg(long)]
        wait: bool,
    },
    /// List instances through the API (all but deleted ones by default).
    List {
        /// Only these statuses, comma-separated (pending, scheduled,
        /// building, active, deleting, deleted, failed, lost).
        #[arg(long)]
        status: Option<String>,
        /// Deleted instances too.
        #[arg(long)]
        all: bool,
    },
    /// Show one instance and its timeline.
    Show {
        /// Instance id.
        id: String,
    },
    /// Every account-region's health, quota and latency.
    Regions,
    /// The cluster (etcd store): its members, leader and lease.
    Cluster {
        /// What to show.
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Manage profiles through the API.
    Profile {
        /// What to do.
        #[command(subcommand)]
        action: ProfileAction,
    },
    /// Delete instances through the API.
    Delete {
        /// Instance ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Print a shell completion script (`oms completions bash >
    /// /etc/bash_completion.d/oms`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (`oms man | man -l -`).
    Man,
    /// Manage provider accounts through the API.
    Account {
        /// What to do.
        #[command(subcommand)]
        action: AccountAction,
    },
    /// Manage API tokens in a store the daemon is not running on.
    Token {
        /// Where the store lives.
        #[arg(long, env = "OMS_STATE_DIR", default_value = DEFAULT_STATE_DIR, global = true)]
        state_dir: PathBuf,
        /// Create the state directory and an empty store if there is none
        /// (otherwise a missing directory is an error: a mistyped path
        /// would hold tokens no daemon reads).
        #[arg(long, global = true)]
        create: bool,
        /// What to do.
        #[command(subcommand)]
        action: TokenAction,
    },
}

/// Token subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create a token and print its value (shown this once).
    Create {
        /// Name; for clients, the owner of their instances.
        #[arg(long)]
        name: String,
        /// Role.
        #[arg(long, value_enum, default_value = "client")]
        role: RoleArg,
        /// Most instances the client may hold.
        #[arg(long)]
        instance_limit: Option<u32>,
        /// Id of an earlier token of this name that this one rotates (a
        /// name is its client's identity and belongs to one line of tokens).
        #[arg(long)]
        continues: Option<String>,
    },
    /// List tokens (never their values).
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// Cluster subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Members, the leader, its term and how long its lease still runs.
    Status,
}

/// Profile subcommands.
#[derive(Debug, Subcommand)]
pub enum ProfileAction {
    /// List profiles.
    List,
    /// Create a profile (--replace: create or replace).
    Add {
        /// Name clients ask for.
        name: String,
        /// At least this many vCPUs.
        #[arg(long)]
        min_vcpus: u32,
        /// At least this much RAM, MiB.
        #[arg(long)]
        min_ram_mb: u64,
        /// At least this much root disk, GB.
        #[arg(long, default_value_t = 0)]
        min_disk_gb: u64,
        /// Image name.
        #[arg(long)]
        image: String,
        /// Seconds a server may take to become active.
        #[arg(long, default_value_t = 600)]
        boot_timeout_secs: u64,
        /// Replace a profile of that name if there is one.
        #[arg(long)]
        replace: bool,
    },
    /// Delete profiles no unfinished instance uses.
    Delete {
        /// Profile names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

/// Account subcommands.
#[derive(Debug, Subcommand)]
pub enum AccountAction {
    /// List accounts (secrets are never shown).
    List,
    /// Register one password account.
    Add {
        /// Account name.
        #[arg(long)]
        name: String,
        /// Keystone URL.
        #[arg(long)]
        auth_url: String,
        /// User name.
        #[arg(long)]
        username: String,
        /// Project name.
        #[arg(long)]
        project_name: String,
        /// Domain of user and project.
        #[arg(long, default_value = "Default")]
        domain: String,
        /// File holding the password.
        #[arg(long)]
        password_file: PathBuf,
        /// Authenticate and list regions before saving.
        #[arg(long)]
        test_connection: bool,
    },
    /// Import every cloud of a clouds.yaml (secure.yaml merged over it).
    ImportClouds {
        /// The clouds.yaml.
        file: PathBuf,
        /// A secure.yaml holding the secrets.
        #[arg(long)]
        secure: Option<PathBuf>,
        /// Only these clouds.
        #[arg(long = "cloud")]
        clouds: Vec<String>,
    },
}

/// Token roles on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Manages accounts, profiles and tokens.
    Admin,
    /// Launches and sees its own instances.
    Client,
}

/// Parses the command line, runs the command, and maps failure to exit 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `log_json` may also come from the daemon's configuration file.
    let configured_json = match &cli.command {
        Command::Serve { config, .. } => {
            let path = config
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
            Config::load(&path, false).is_ok_and(|c| c.log_json)
        }
        _ => false,
    };
    // The demo logs to a file in its directory, so its banner stays.
    let (mut demo_dir, mut demo_log) = (None, None);
    if let Command::Demo {
        state_dir, verbose, ..
    } = &cli.command
    {
        match crate::demo::directory(state_dir.as_deref()) {
            Ok(dir) => {
                if !verbose {
                    let log = dir.join("oms-demo.log");
                    if let Err(error) = crate::telemetry::init_file(&log, cli.log_json) {
                        eprintln!("oms: {error:#}");
                        return ExitCode::FAILURE;
                    }
                    demo_log = Some(log);
                }
                demo_dir = Some(dir);
            }
            Err(error) => {
                eprintln!("oms: {error:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    crate::telemetry::init(cli.log_json || configured_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("oms: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let api = || crate::client::ApiClient::new(&cli.url, cli.token.as_deref());
    let format = cli.format;
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve {
                config,
                state_dir,
                listen,
            } => serve(config, state_dir, listen).await,
            Command::CheckConfig { file, credentials } => check_config(&file, credentials),
            Command::Demo {
                listen, state_dir, ..
            } => {
                let options = crate::demo::DemoOptions {
                    listen,
                    dir: demo_dir.clone().context("no demo directory")?,
                    keep_state: state_dir.is_some(),
                    log_file: demo_log.clone(),
                };
                crate::demo::run(options).await
            }
            Command::Sim { config } => crate::sim_command::run(config.as_deref()).await,
            Command::Token {
                state_dir,
                create,
                action,
            } => token(state_dir, create, action, format).await,
            Command::Completions { shell } => {
                let mut command = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut command, "oms", &mut std::io::stdout());
                Ok(())
            }
            Command::Man => {
                let command = <Cli as clap::CommandFactory>::command();
                clap_mangen::Man::new(command)
                    .render(&mut std::io::stdout())
                    .context("cannot write the manual page")
            }
            Command::Launch {
                profile,
                count,
                name_prefix,
                public_key_file,
                key_out,
                no_key,
                max_attempts,
                deadline,
                wait,
            } => {
                let ask = crate::client::Launch {
                    profile: &profile,
                    count,
                    name_prefix: name_prefix.as_deref(),
                    public_key_file: public_key_file.as_deref(),
                    key_out: key_out.as_deref(),
                    no_key,
                    max_attempts,
                    deadline,
                    wait,
                };
                crate::client::launch(&api()?, ask, format).await
            }
            Command::List { status, all } => {
                crate::client::list(&api()?, status.as_deref(), all, format).await
            }
            Command::Show { id } => crate::client::show(&api()?, &id, format).await,
            Command::Regions => crate::client::regions(&api()?, format).await,
            Command::Cluster {
                action: ClusterAction::Status,
            } => crate::client::cluster_status(&api()?, format).await,
            Command::Delete { ids } => crate::client::delete(&api()?, &ids, format).await,
            Command::Profile { action } => profile(&api()?, action, format).await,
            Command::Account { action } => account(&api()?, action, format).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oms: {error:#}");
            error
                .downcast_ref::<crate::client::ApiFailure>()
                .map_or(ExitCode::FAILURE, |f| ExitCode::from(f.class.exit_code()))
        }
    }
}

async fn serve(
    config_path: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let required = config_path.is_some();
    let path = config_path.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let mut config = Config::load(&path, required).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}: {}", path.display(), lines.join("; "))
    })?;
    if let Some(dir) = state_dir {
        config.state_dir = dir;
    }
    if let Some(addr) = listen {
        config.listen = addr;
    }
    crate::serve::run(&path, required, config).await
}

fn check_config(file: &std::path::Path, credentials: Option<PathBuf>) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (config, mut problems) = Config::parse_all(&text, file, std::env::vars());
    let mut notes = Vec::new();
    if let Some(mut config) = config {
        if let Some(dir) = credentials {
            config.secrets = crate::config::SecretPlaces::only(dir);
        }
        let checked = config.check(&text);
        problems.extend(checked.problems);
        notes = checked.notes;
    }
    problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
    // FILE:LINE:COLUMN, as compilers write, so editors jump to it.
    let placed = |p: &crate::config::Problem| match (p.line, p.column) {
        (Some(line), Some(column)) => format!("{}:{line}:{column}", file.display()),
        (Some(line), None) => format!("{}:{line}", file.display()),
        _ => file.display().to_string(),
    };
    for note in &notes {
        println!("{}: note: {}", placed(note), note.message);
    }
    if problems.is_empty() {
        println!("{}: ok", file.display());
        return Ok(());
    }
    for problem in &problems {
        println!("{}: {}", placed(problem), problem.message);
    }
    anyhow::bail!("{} problem(s) in {}", problems.len(), file.display())
}

async fn profile(
    client: &crate::client::ApiClient,
    action: ProfileAction,
    format: crate::output::Format,
) -> anyhow::Result<()> {
    match action {
        ProfileAction::List => crate::client::profiles(client, format).await,
        ProfileAction::Add {
            name,
            min_vcpus,
            min_ram_mb,
            min_disk_gb,
            image,
            boot_timeout_secs,
            replace,
        } => {
            let body = serde_json::json!({
                "name": name, "min_vcpus": min_vcpus, "min_ram_mb": min_ram_mb,
                "min_disk_gb": min_disk_gb, "image": image, "boot_timeout_secs": boot_timeout_secs,
            });
            crate::client::add_profile(client, &body, replace, format).await
        }
        ProfileAction::Delete { names } => crate::client::delete_profiles(client, &names).await,
    }
}

async fn account(
    client: &crate::client::ApiClient,
    action: AccountAction,
    format: crate::output::Format,
) -> anyhow::Result<()> {
    match action {
        AccountAction::List => crate::client::accounts(client, format).await,
        AccountAction::Add {
            name,
            auth_url,
            username,
            project_name,
            domain,
            password_file,
            test_connection,
        } => {
            let password = std::fs::read_to_string(&password_file)
                .with_context(|| format!("cannot read {}", password_file.display()))?;
            let body = serde_json::json!({
                "name": name, "auth_url": auth_url,
                "user": {"name": username, "domain": domain},
                "project": {"name": project_name, "domain": domain},
                "password": password.trim_end_matches(['\n', '\r']),
                "test_connection": test_connection,
            });
            crate::client::register(client, &[body]).await
        }
        AccountAction::ImportClouds {
            file,
            secure,
            clouds,
        } => {
            let bodies = crate::clouds::read(&file, secure.as_deref(), &clouds)?;
            crate::client::register(client, &bodies).await
        }
    }
}

async fn token(
    state_dir: PathBuf,
    create: bool,
    action: TokenAction,
    format: crate::output::Format,
) -> anyhow::Result<()> {
    if !create && !state_dir.exists() {
        anyhow::bail!(
            "no state directory at {} (is --state-dir or OMS_STATE_DIR right? --create makes a new one)",
            state_dir.display()
        );
    }
    let store = open_store(&state_dir)?;
    match action {
        TokenAction::Create {
            name,
            role,
            instance_limit,
            continues,
        } => {
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Client => Role::Client,
            };
            let new = NewToken {
                name: name.clone(),
                role,
                instance_limit,
                continues,
            };
            let (token, value) = oms_actors::tokens::issue(store.as_ref(), new).await?;
            eprintln!(
                "created token {} ({name}); its value is shown once:",
                token.id
            );
            println!("{}", value.expose_secret());
        }
        TokenAction::List => {
            // What GET /v1/tokens answers: never a hash, never a value.
            let tokens: Vec<serde_json::Value> = store
                .list_tokens()?
                .iter()
                .map(|t| {
                    serde_json::json!({"id": t.id, "name": t.name, "role": t.role,
                        "instance_limit": t.instance_limit, "revoked": t.revoked,
                        "created_at": t.created_at})
                })
                .collect();
            crate::output::emit(format, &serde_json::Value::Array(tokens.clone()), || {
                use crate::output::{cell, table, time};
                table(
                    &["id", "name", "role", "instance limit", "state", "created"],
                    tokens.iter().map(|t| {
                        let state = if t["revoked"] == true {
                            "revoked"
                        } else {
                            "active"
                        };
                        vec![
                            cell(t, "id"),
                            cell(t, "name"),
                            cell(t, "role"),
                            cell(t, "instance_limit"),
                            state.to_owned(),
                            time(t, "created_at"),
                        ]
                    }),
                )
            })?;
        }
        TokenAction::Revoke { id } => {
            oms_actors::tokens::revoke(store.as_ref(), &id).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
