//! Core of OpenMultiStack: the OpenStack client today; the store, the actor
//! tree and placement build on it.
//!
//! `web` and the binary see only what is exported here, never the wire types
//! of the providers.

pub mod openstack;
