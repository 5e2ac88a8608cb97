//! Core of OpenMultiStack: the domain model, the durable store, the
//! OpenStack client, and the actor tree and placement built on them.
//!
//! `web` and the binary see only what is exported here, never the wire types
//! of the providers.

pub mod breaker;
pub mod ledger;
pub mod model;
pub mod openstack;
pub mod placement;
pub mod profiles;
pub mod restart;
pub mod store;
