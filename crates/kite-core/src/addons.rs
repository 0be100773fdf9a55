//! AKS add-ons (`az aks create --enable-addons …`) as the resource provider sets them up: those
//! that act on Azure resources get a user-assigned identity in the node resource group, named as
//! AKS names it (`{addon in lower case}-{cluster}`), with the roles seed 002's table lists:
//!
//! | add-on (addonProfiles key)      | identity                              | role                                        |
//! |---------------------------------|---------------------------------------|---------------------------------------------|
//! | `httpApplicationRouting`        | `httpapplicationrouting-{cluster}`    | Reader on the node resource group           |
//! | `ingressApplicationGateway`     | `ingressapplicationgateway-{cluster}` | Contributor on the node resource group      |
//! | `omsagent` (monitoring)         | `omsagent-{cluster}`                  | Monitoring Metrics Publisher on the cluster |
//! | `aciConnectorLinux` (virtual node) | `aciconnectorlinux-{cluster}`      | Contributor on the node resource group      |
//! | `azureKeyvaultSecretsProvider`  | `azurekeyvaultsecretsprovider-{cluster}` | none (vault access is granted by the user) |
//!
//! Add-ons that need no identity (azure-policy, dashboard, …) are kept as given. HTTP application
//! routing's DNS Zone Contributor on its zone is not given: kite has no DNS zones.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::aks::{ClusterWrite, IdentityRef, CONTRIBUTOR};
use crate::directory::{ManagedIdentity, ResourceGroup};
use crate::{Error, Result, Scope};

pub const READER: Uuid = Uuid::from_u128(0xacdd72a7_3385_48ef_bd42_f606fba81ae7);
pub const MONITORING_METRICS_PUBLISHER: Uuid = Uuid::from_u128(0x3913510d_42f4_4e42_8a64_420c390055eb);

/// Where an add-on identity's role applies.
#[derive(Clone, Copy)]
enum Target {
    NodeGroup,
    Cluster,
}

/// The add-ons with an identity: addonProfiles key and role (if any).
const WITH_IDENTITY: [(&str, Option<(Uuid, Target)>); 5] = [
    ("httpApplicationRouting", Some((READER, Target::NodeGroup))),
    ("ingressApplicationGateway", Some((CONTRIBUTOR, Target::NodeGroup))),
    ("omsagent", Some((MONITORING_METRICS_PUBLISHER, Target::Cluster))),
    ("aciConnectorLinux", Some((CONTRIBUTOR, Target::NodeGroup))),
    ("azureKeyvaultSecretsProvider", None),
];

/// One entry of `addonProfiles`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Addon {
    pub enabled: bool,
    #[serde(default)]
    pub config: Option<BTreeMap<String, String>>,
    /// Set by kite for an enabled add-on that acts with an identity of its own.
    #[serde(default)]
    pub identity: Option<IdentityRef>,
}

/// The most add-ons one cluster lists.
const MAX_ADDONS: usize = 32;

/// Sets up `requested` (key → add-on) on the cluster being created in `w`: identities and roles.
pub fn plan_addons(w: &mut ClusterWrite, requested: BTreeMap<String, Addon>, node_group: &ResourceGroup, now: OffsetDateTime, by: Option<Uuid>) -> Result<()> {
    if requested.len() > MAX_ADDONS {
        return Err(Error::InvalidArgument(format!("{} add-ons were given; a cluster lists at most {MAX_ADDONS}", requested.len())));
    }
    let mut addons = BTreeMap::new();
    for (key, mut addon) in requested {
        addon.identity = None;
        let known = WITH_IDENTITY.iter().find(|(k, _)| k.eq_ignore_ascii_case(&key));
        if let (true, Some((name, role))) = (addon.enabled, known) {
            let mi = ManagedIdentity::new(node_group, &format!("{}-{}", name.to_lowercase(), w.cluster.name), Some(&w.cluster.location), w.cluster.tenant_id)?;
            if let Some((role, target)) = role {
                let scope = match target {
                    Target::NodeGroup => node_group.scope(),
                    Target::Cluster => Scope::parse(&w.cluster.id())?,
                };
                w.assignments.push(crate::aks::assignment(mi.principal_id, *role, scope, now, by));
            }
            addon.identity = Some(IdentityRef::from(&mi));
            w.identities.push(mi);
        }
        let key = known.map_or(key, |(k, _)| k.to_string());
        if addons.insert(key.clone(), addon).is_some() {
            return Err(Error::InvalidArgument(format!("add-on '{key}' is given twice")));
        }
    }
    w.cluster.addons = addons;
    Ok(())
}

/// An update may send the add-ons back as they are; enabling or disabling one is not supported yet.
pub fn check_unchanged(current: &BTreeMap<String, Addon>, sent: &BTreeMap<String, Addon>) -> Result<()> {
    let enabled = |m: &BTreeMap<String, Addon>| -> Vec<String> { m.iter().filter(|(_, a)| a.enabled).map(|(k, _)| k.to_lowercase()).collect() };
    let (was, now) = (enabled(current), enabled(sent));
    if was != now {
        return Err(Error::InvalidArgument(format!(
            "kite sets add-ons up when a cluster is created; this update would change the enabled ones from {was:?} to {now:?}. Create the cluster with --enable-addons"
        )));
    }
    Ok(())
}
