//! The minato registry server: the OCI Distribution API (v1.1) over [`minato_store::Store`].
//!
//! Request flow: [`route`] turns the path into a typed [`route::Route`] once; the
//! [`access`] layer decides whether the caller may perform the route's action (the identity
//! layer plugs in here, handlers never see credentials); [`handlers`] do the work and answer
//! errors in the spec's JSON shape ([`error`]).

pub mod access;
mod admin;
pub mod auth;
mod blob_body;
pub mod error;
mod handlers;
mod headers;
pub mod range;
pub mod route;
pub mod server;
mod signatures;

pub use access::{AccessControl, AccessDecision, OpenAccess};
pub use server::{RegistryConfig, Tls, build_router, serve, spawn_maintenance, tenancy_routes};
