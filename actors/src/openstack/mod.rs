//! The OpenStack client: Keystone (v3 and v2.0), Nova and Glance.
//!
//! One [`Client`] (one connection pool) is shared by every account; each
//! account has a [`Session`] that owns its token; each account-region has a
//! [`ComputeClient`] and an [`ImageClient`]. Every failure is a
//! [`ProviderError`] whose [`Class`] comes from the one [`classify`]
//! function. Nothing here retries: that is the region actor's decision.

mod catalog;
mod credentials;
mod error;
mod glance;
mod http;
mod keystone;
mod microversion;
mod nova;
mod nova_types;
mod session;

pub use catalog::{Catalog, Endpoint, Interface};
pub use credentials::{
    ApplicationCredentialRef, AuthSpec, Credentials, Domain, IdentityVersion, Named,
};
pub use error::{Class, ErrorBody, Observation, ProviderError, TransportFailure, classify};
pub use glance::{Image, ImageClient};
pub use http::{Client, ClientConfig};
pub use keystone::{Token, authenticate};
pub use microversion::{Microversion, NEWEST_SUPPORTED, OLDEST_SUPPORTED, negotiate};
pub use nova::ComputeClient;
pub use nova_types::{
    AbsoluteLimits, Address, CreateServer, Fault, Flavor, Keypair, Networks, Server, ServerFilter,
    ServerListing,
};
pub use session::Session;
