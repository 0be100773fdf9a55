//! IAM users and their long-term access keys, so a person (seed 004's user 6248) can call STS and
//! `aws eks get-token` with static keys rather than a role session.
//!
//! Security-sensitive. A key's secret is never stored: it is derived from the STS master key and
//! the access key ID (see [`super::sts::SessionIssuer::user_key_secret`]), so the store holds only
//! who owns which key ID and whether it is active. Deleting the row ends the key at once.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::arn::{validate_name, validate_path, Arn};
use crate::Result;

/// IAM's quota of access keys per user (`LimitExceeded` beyond it).
pub const MAX_ACCESS_KEYS_PER_USER: usize = 2;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub arn: Arn,
    pub user_name: String,
    /// `/` or `/a/b/`.
    pub path: String,
    /// `AIDA` + 17 uppercase letters or digits: GetCallerIdentity's `UserId` for the user.
    pub user_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

impl User {
    pub fn new(account: &str, name: &str, path: Option<&str>, now: OffsetDateTime) -> Result<User> {
        let path = path.unwrap_or("/");
        validate_path(path)?;
        validate_name("user", name)?;
        let arn = Arn::user(account, Some(path), name)?;
        Ok(User { arn, user_name: name.into(), path: path.into(), user_id: super::random_id("AIDA", 17), created: now })
    }
}

/// `Active` keys sign; `Inactive` ones are kept but refused (IAM's UpdateAccessKey states).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Inactive,
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyStatus::Active => "Active",
            KeyStatus::Inactive => "Inactive",
        })
    }
}

/// What is stored of an access key: its ID, owner and status — never a secret.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccessKey {
    pub access_key_id: String,
    pub user_name: String,
    pub status: KeyStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

impl AccessKey {
    /// A fresh active key ID (`AKIA` + 16) for `user`.
    pub fn new(user: &User, now: OffsetDateTime) -> AccessKey {
        AccessKey { access_key_id: super::random_id("AKIA", 16), user_name: user.user_name.clone(), status: KeyStatus::Active, created: now }
    }
}

/// True for `AKIA` + 16 uppercase letters or digits, the shape of long-term key IDs.
pub fn is_user_access_key_id(akid: &str) -> bool {
    akid.len() == 20 && akid.starts_with("AKIA") && akid.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2024-05-01 12:00 UTC);

    #[test]
    fn users_and_keys_have_iam_shapes() {
        let u = User::new("860391000000", "6248", None, NOW).unwrap();
        assert_eq!(u.arn.to_string(), "arn:aws:iam::860391000000:user/6248");
        assert!(u.user_id.starts_with("AIDA") && u.user_id.len() == 21, "{}", u.user_id);
        let k = AccessKey::new(&u, NOW);
        assert!(is_user_access_key_id(&k.access_key_id), "{}", k.access_key_id);
        assert_eq!((k.user_name.as_str(), k.status), ("6248", KeyStatus::Active));
        assert!(!is_user_access_key_id("ASIAAAAAAAAAAAAAAAAA"));
        let pathed = User::new("860391000000", "ops", Some("/team/"), NOW).unwrap();
        assert_eq!(pathed.arn.to_string(), "arn:aws:iam::860391000000:user/team/ops");
    }

    #[test]
    fn bad_names_and_paths_are_refused() {
        assert!(User::new("860391000000", "has space", None, NOW).is_err());
        assert!(User::new("860391000000", "ok", Some("no-slashes"), NOW).is_err());
        assert!(User::new("860391000000", &"x".repeat(129), None, NOW).is_err());
    }
}
