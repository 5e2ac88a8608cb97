//! The integration tests, linked into one binary: one link instead of one
//! per file keeps the build small and fast. Each module is one subject.

mod support;

mod api_guards;
mod api_instances;
mod api_profiles;
mod api_secrets;
mod api_tokens;
mod browser;
mod chaos_soak;
mod client_against_sim;
mod client_bad_answers;
#[cfg(feature = "etcd")]
mod cluster_basics;
#[cfg(feature = "etcd")]
mod cluster_failover;
#[cfg(feature = "etcd")]
mod cluster_fencing;
#[cfg(feature = "etcd")]
mod cluster_quorum;
mod conformance;
mod facade_openstack;
mod fleet_accounts;
mod fleet_capacity;
mod fleet_failover;
mod fleet_health;
mod fleet_launches;
mod fleet_leaks;
mod fleet_lost;
mod fleet_retention;
mod fleet_storms;
mod fleet_supervision;
mod kill;
mod oms_client;
mod oms_crash;
mod oms_daemon;
mod oms_serve;
mod oms_sim_command;
mod pages;
mod prometheus_rules;
mod sim_transcripts;
mod store_suite;
