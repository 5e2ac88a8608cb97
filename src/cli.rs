//! Command-line interface of `oms`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use oms_actors::model::Role;
use secrecy::ExposeSecret;

use anyhow::Context as _;

use crate::config::{Config, DEFAULT_CONFIG};
use crate::state::{DEFAULT_STATE_DIR, open_store};

/// Pools many OpenStack accounts into one source of compute.
#[derive(Debug, Parser)]
#[command(name = "oms", version, about)]
pub struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "OMS_LOG_JSON")]
    pub log_json: bool,
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
    /// Check a configuration file and print what is wrong, with lines.
    CheckConfig {
        /// The file.
        #[arg(default_value = DEFAULT_CONFIG)]
        file: PathBuf,
    },
    /// Run the daemon over an embedded simulator, with an admin token.
    Demo {
        /// Address of the REST API.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Run the OpenStack simulator (3 providers × 2 regions by default).
    Sim {
        /// TOML file describing providers, regions, quotas and faults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Manage API tokens in a store the daemon is not running on.
    Token {
        /// Where the store lives.
        #[arg(long, env = "OMS_STATE_DIR", default_value = DEFAULT_STATE_DIR, global = true)]
        state_dir: PathBuf,
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
    },
    /// List tokens (never their values).
    List,
    /// Revoke a token by id.
    Revoke {
        /// Token id.
        id: String,
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
    crate::telemetry::init(cli.log_json);
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
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve {
                config,
                state_dir,
                listen,
            } => serve(config, state_dir, listen).await,
            Command::CheckConfig { file } => check_config(&file),
            Command::Demo { listen } => crate::demo::run(listen).await,
            Command::Sim { config } => crate::sim_command::run(config.as_deref()).await,
            Command::Token { state_dir, action } => token(state_dir, action).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("oms: {error:#}");
            ExitCode::FAILURE
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

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let problems = match Config::parse(&text, file, std::env::vars()) {
        Ok(config) => config.check(&text),
        Err(problems) => problems,
    };
    if problems.is_empty() {
        println!("{}: ok", file.display());
        return Ok(());
    }
    for problem in &problems {
        println!("{}: {problem}", file.display());
    }
    anyhow::bail!("{} problem(s) in {}", problems.len(), file.display())
}

async fn token(state_dir: PathBuf, action: TokenAction) -> anyhow::Result<()> {
    let store = open_store(&state_dir)?;
    match action {
        TokenAction::Create {
            name,
            role,
            instance_limit,
        } => {
            let role = match role {
                RoleArg::Admin => Role::Admin,
                RoleArg::Client => Role::Client,
            };
            let (token, value) =
                oms_web::create_token(store.as_ref(), &name, role, instance_limit).await?;
            eprintln!(
                "created token {} ({name}); its value is shown once:",
                token.id
            );
            println!("{}", value.expose_secret());
        }
        TokenAction::List => {
            for t in store.list_tokens()? {
                let role = match t.role {
                    Role::Admin => "admin",
                    Role::Client => "client",
                };
                let state = if t.revoked { "revoked" } else { "active" };
                println!("{}  {:<20} {:<6} {state}", t.id, t.name, role);
            }
        }
        TokenAction::Revoke { id } => {
            let mut token = store
                .list_tokens()?
                .into_iter()
                .find(|t| t.id == id)
                .ok_or_else(|| anyhow::anyhow!("no token {id}"))?;
            token.revoked = true;
            store.put_token(&token)?;
            store.flush().await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
