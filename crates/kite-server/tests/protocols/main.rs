//! Each protocol's errors and edge cases, through the router in process with a pinned clock: no
//! binary, no socket, and times exact to the second.

mod az;
mod entra;
mod imds;
mod management;
mod sts;
mod support;
mod webhooks;
