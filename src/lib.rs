//! OpenMultiStack's binary crate: command line, telemetry and the
//! composition root that wires the actors, the web server and the simulator.

pub mod check_config;
pub mod cli;
pub mod client;
pub mod clouds;
#[cfg(feature = "etcd")]
pub mod cluster;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod output;
pub mod serve;
pub mod sim_command;
pub mod state;
pub mod telemetry;
