//! Core of OpenMultiStack: the domain model, the durable store, the
//! OpenStack client, and the actor tree and placement built on them.
//!
//! `web` and the binary use the [`fleet::Fleet`] facade and the read side
//! of the store; no actor type and no provider wire type leaks out.

mod account;
pub mod bounds;
pub mod breaker;
pub mod cluster_view;
mod dispatcher;
pub mod fence;
pub mod fleet;
pub mod history;
pub mod leaks;
pub mod ledger;
mod messages;
pub mod model;
pub mod one_project;
pub mod openstack;
mod ownership;
pub mod pacer;
pub mod placement;
pub mod profiles;
mod provider_clock;
mod reconciler;
mod refusals;
mod region;
mod region_calls;
pub mod restart;
mod root;
mod shared_board;
pub mod status;
pub mod store;
pub mod tokens;
mod transitions;

pub use fleet::{ChaosTarget, Fleet, FleetError, Launched, NewLaunch};
pub use messages::{Chaos, FleetConfig, FleetEvent, Step};
