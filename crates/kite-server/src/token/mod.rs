//! The token service: Entra-shaped endpoints (`entra`: discovery, JWKS, `client_credentials`),
//! AWS-shaped STS (`sts`), and what they depend on: signing keys and their rotation (`keys`), external
//! issuers' keys for federated credentials (`issuers`, fetched through `egress`'s vetted resolver),
//! projected service-account tokens from the cluster (`projected`), the client lookup cache (`clients`), the failed-authentication brake (`throttle`) and the record
//! of refused federated assertions (`refusals`). Security-sensitive: every token kite signs comes
//! from here.

pub mod clients;
pub mod egress;
pub mod entra;
pub mod iam;
pub mod issuers;
pub mod keys;
pub mod projected;
pub mod refusals;
pub mod service;
pub mod sessions;
pub mod sts;
pub mod throttle;
