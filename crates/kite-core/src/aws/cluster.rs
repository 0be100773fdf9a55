//! EKS-shaped clusters as `aws eks create-cluster` makes them: a name, an ARN, an authentication
//! mode and, kept by kite for what EKS does with it, the IAM principal that created it. As EKS's
//! bootstrap cluster-creator admin, that principal authenticates as a `system:masters` member
//! whatever `aws-auth` says (seed 004: when everyone else is locked out, the creator can repair it).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::arn::{canonicalize, validate_account_id, Arn};
use super::eks::validate_cluster_name;
use crate::{Error, Result};

/// The authentication modes EKS accepts, as `--authentication-mode` spells them.
pub const AUTHENTICATION_MODES: [&str; 3] = ["CONFIG_MAP", "API_AND_CONFIG_MAP", "API"];
/// The Kubernetes version kite's clusters report (kite runs no control plane of its own).
pub const KUBERNETES_VERSION: &str = "1.31";
/// The user name EKS gives the creator's implicit `system:masters` mapping.
pub const CREATOR_USERNAME: &str = "kubernetes-admin";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EksCluster {
    pub name: String,
    pub arn: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub authentication_mode: String,
    /// Whether the creator is a cluster admin (EKS's `bootstrapClusterCreatorAdminPermissions`, default true).
    pub bootstrap_cluster_creator_admin_permissions: bool,
    /// The creator's canonical ARN (`arn:aws:iam::ACCT:role/NAME` for a role session, the user's ARN for a user).
    pub creator_arn: String,
}

impl EksCluster {
    /// A new cluster; `creator` is the ARN that signed the request (an assumed-role session ARN is canonicalised).
    pub fn new(region: &str, account: &str, name: &str, mode: Option<&str>, creator_admin: bool, creator: &Arn, now: OffsetDateTime) -> Result<Self> {
        validate_account_id(account)?;
        validate_cluster_name(name)?;
        let mode = mode.unwrap_or("API_AND_CONFIG_MAP");
        let Some(mode) = AUTHENTICATION_MODES.iter().find(|m| m.eq_ignore_ascii_case(mode)) else {
            return Err(Error::InvalidArgument(format!(
                "InvalidParameterException: authentication mode '{mode}' is not one of {}",
                AUTHENTICATION_MODES.join(", ")
            )));
        };
        Ok(EksCluster {
            name: name.into(),
            arn: format!("arn:aws:eks:{region}:{account}:cluster/{name}"),
            created_at: now,
            authentication_mode: (*mode).to_string(),
            bootstrap_cluster_creator_admin_permissions: creator_admin,
            creator_arn: canonicalize(creator).to_string(),
        })
    }

    /// Whether `arn` (as the authenticator canonicalises it) is the creator holding admin rights.
    pub fn is_creator_admin(&self, canonical_arn: &str) -> bool {
        self.bootstrap_cluster_creator_admin_permissions && self.creator_arn.eq_ignore_ascii_case(canonical_arn)
    }

    /// `aws eks describe-cluster`'s `cluster` object (EKS does not show the creator; CloudTrail does).
    pub fn render(&self) -> Value {
        json!({
            "name": self.name,
            "arn": self.arn,
            "createdAt": self.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "version": KUBERNETES_VERSION,
            "status": "ACTIVE",
            "accessConfig": {
                "authenticationMode": self.authentication_mode,
                "bootstrapClusterCreatorAdminPermissions": self.bootstrap_cluster_creator_admin_permissions,
            },
            "tags": {},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-12-01 10:00 UTC);

    #[test]
    fn the_creator_is_kept_canonical_and_is_admin_unless_told_otherwise() {
        let session = Arn::parse("arn:aws:sts::860391000000:assumed-role/ekscluster/s1").unwrap();
        let c = EksCluster::new("us-east-1", "860391000000", "testcluster", None, true, &session, NOW).unwrap();
        assert_eq!(c.creator_arn, "arn:aws:iam::860391000000:role/ekscluster");
        assert_eq!(c.authentication_mode, "API_AND_CONFIG_MAP");
        assert!(c.is_creator_admin("arn:aws:iam::860391000000:role/EKSCluster"));
        assert!(!c.is_creator_admin("arn:aws:iam::860391000000:user/6248"));
        let user = Arn::parse("arn:aws:iam::860391000000:user/2049").unwrap();
        let off = EksCluster::new("us-east-1", "860391000000", "t", Some("config_map"), false, &user, NOW).unwrap();
        assert_eq!(off.authentication_mode, "CONFIG_MAP");
        assert!(!off.is_creator_admin("arn:aws:iam::860391000000:user/2049"), "bootstrapClusterCreatorAdminPermissions=false");
        assert_eq!(off.render()["accessConfig"]["bootstrapClusterCreatorAdminPermissions"], false);
    }

    #[test]
    fn bad_names_and_modes_are_refused_with_what_is_allowed() {
        let creator = &Arn::parse("arn:aws:iam::860391000000:user/2049").unwrap();
        let err = EksCluster::new("us-east-1", "860391000000", "-bad", None, true, creator, NOW).unwrap_err().to_string();
        assert!(err.contains("invalid cluster name"), "{err}");
        let err = EksCluster::new("us-east-1", "860391000000", "ok", Some("OPEN"), true, creator, NOW).unwrap_err().to_string();
        assert!(err.contains("CONFIG_MAP, API_AND_CONFIG_MAP, API"), "{err}");
    }
}
