//! kite's domain core: scopes, the directory (principals, applications, credentials), role
//! definitions and the RBAC decision engine. No I/O here: callers read the clock and the store at
//! the edge and pass what they read in, so every decision can be tested without a socket.

// Request paths answer errors, never panic; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod addons;
pub mod aks;
pub mod audit;
pub mod aws;
pub mod credential;
pub mod directory;
pub mod doctor;
pub mod federation;
pub mod network;
pub mod odata;
pub mod rbac;
pub mod scope;
pub mod suggest;
pub mod vault;

pub use scope::Scope;

/// What can go wrong in the domain. Every message names the bad input and how to fix it.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("{0}")]
    InvalidScope(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
