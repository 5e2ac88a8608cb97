//! Command-line interface of `oms`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Run the OpenStack simulator (3 providers × 2 regions by default).
    Sim {
        /// TOML file describing providers, regions, quotas and faults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
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
            Command::Sim { config } => crate::sim_command::run(config.as_deref()).await,
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
