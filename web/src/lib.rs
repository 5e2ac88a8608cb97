//! The HTTP face of OpenMultiStack: REST API v1, client authentication,
//! operator pages and metrics.
//!
//! It reaches the actor system only through the facade `oms-actors`
//! exports, never through actor types, so the API can be tested against the
//! store and a dispatcher client alone. The routes arrive with the API work;
//! until then this crate only fixes its place in the dependency graph.
