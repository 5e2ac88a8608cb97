//! The conformance tier: the real `oms` daemon against real Keystone 30 and
//! Nova 34 (two regions) that `conformance/run` starts on loopback.
//!
//! Ignored by default (they need that cloud); `conformance/run` selects
//! them with `--run-ignored only`. They share one demo project, so they run
//! one at a time (the `conformance` test group in `.config/nextest.toml`),
//! and each one leaves Nova as it found it: no server, no key pair of ours.

mod bench;
mod cloud;
mod daemon;
mod differential;
mod facade;
mod lifecycle;
mod lost;
mod outage;
mod quota;
mod restart;
mod tokens;
