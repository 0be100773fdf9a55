//! Plumbing every endpoint stands on and none owns: the shared state and error type, TLS material,
//! connection limits, first-start bootstrap, file watching, metrics, and where the cluster is read
//! from. Named `infra` because it is what a newcomer skips on a first read: no protocol lives here.

pub mod bootstrap;
pub mod clock;
pub mod cluster;
pub mod conn;
pub mod error;
pub mod health;
pub mod kek;
pub mod metrics;
pub mod middleware;
pub mod state;
pub mod tls;
pub mod watch;
