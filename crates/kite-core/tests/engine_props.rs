//! Property tests for the RBAC decision engine, driven only through its public API:
//! `Snapshot::new`, `evaluate`, `Scope::parse`, `builtin_roles()` and `directory_roles()`.
//!
//! Scopes, actions and action patterns are drawn from small vocabularies so that random
//! snapshots collide often: names that share prefixes (`rg`, `rg1`, `rg10`), patterns with
//! wildcards (`*`, `Microsoft.Network/*`, `*/read`, whole-segment `/*/`), mixed spellings.
//! The brute-force oracle below re-derives every decision from the documented rules without
//! the engine's index, scope chain or glob.
//!
//! Custom roles often take a built-in role's GUID or name (any case): the oracle reads every
//! assignment with the built-in roles as Azure and Entra define them, and such custom roles grant
//! nothing. Directory roles decide `microsoft.directory/` actions alone; Azure roles the rest.

use std::collections::HashMap;

use kite_core::rbac::directory::directory_roles;
use kite_core::rbac::engine::{evaluate, AccessRequest, Decision, Snapshot};
use kite_core::rbac::{builtin_roles, ActionKind, Coverage, Permission, RoleAssignment, RoleDefinition, RoleType};
use kite_core::Scope;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;
use time::OffsetDateTime;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Vocabularies
// ---------------------------------------------------------------------------------------------

/// Subscriptions are deterministic GUIDs.
const SUB_BASE: u128 = 0x5ab0_0000;
const PRINCIPAL_BASE: u128 = 0x9000_0000;
const CUSTOM_ROLE_BASE: u128 = 0xc0_0000_0000;
const ASSIGNMENT_BASE: u128 = 0xa5_0000_0000;

fn sub_id(n: u8) -> Uuid {
    Uuid::from_u128(SUB_BASE + u128::from(n))
}

fn principal(n: u8) -> Uuid {
    Uuid::from_u128(PRINCIPAL_BASE + u128::from(n))
}

/// Resource group names, pairwise different ignoring case; several are prefixes of others, one
/// is also a path keyword, and two are not ASCII (ARM allows Unicode letters in group names).
const RESOURCE_GROUPS: &[&str] = &["rg", "rg1", "rg10", "Rg1-x", "MC_rg_aks_japaneast", "a.b", "x(1)", "providers", "Ünïcode-rg", "été"];
const NAMESPACES: &[&str] = &["Microsoft.Network", "Microsoft.KeyVault", "Microsoft.ManagedIdentity"];
const TYPES: &[&str] = &["virtualNetworks", "subnets", "vaults", "secrets", "userAssignedIdentities", "providers"];
const NAMES: &[&str] = &["v1", "v10", "s", "kubernetes", "resourceGroups", "Microsoft.Fake"];

const ACTIONS: &[&str] = &[
    "Microsoft.Network/loadBalancers/read",
    "Microsoft.Network/loadBalancers/write",
    "Microsoft.Network/loadBalancers/readx",
    "Microsoft.Network/virtualNetworks/read",
    "Microsoft.Network/virtualNetworks/subnets/join/action",
    "Microsoft.Network/subnets/join/action",
    "Microsoft.Compute/virtualMachines/read",
    "Microsoft.Compute/virtualMachines/start/action",
    "Microsoft.Authorization/roleAssignments/write",
    "Microsoft.Authorization/roleAssignments/read",
    "Microsoft.Authorization/roleAssignments/delete",
    "Microsoft.Authorization/Write",
    "Microsoft.ManagedIdentity/userAssignedIdentities/read",
    "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
    "Microsoft.ManagedIdentity/userAssignedIdentities/x/assign/action",
    "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",
    "Microsoft.KeyVault/vaults/read",
    "Microsoft.KeyVault/vaults/secrets/getSecret/action",
    "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
    "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
    "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
];

/// Directory actions (Entra's names, mixed spellings): only directory roles may grant them.
const DIRECTORY_ACTIONS: &[&str] = &[
    "microsoft.directory/applications/credentials/update",
    "Microsoft.Directory/applications/delete",
    "microsoft.directory/roleAssignments/allProperties/allTasks",
    "microsoft.directory/applications/applicationProxy/update",
];

/// Action patterns for custom roles: every literal action above, plus wildcards.
const WILDCARDS: &[&str] = &[
    "*",
    "*/read",
    "*/write",
    "*/action",
    "*/delete",
    "Microsoft.Network/*",
    "Microsoft.Network/loadBalancers/*",
    "microsoft.network/LOADBALANCERS/read",
    "Microsoft.Network/*/read",
    "Microsoft.Network/*/join/action",
    "Microsoft.Network/*/subnets/*/action",
    "Microsoft.Network/virtualNetworks/*/*/action",
    "Microsoft.Compute/*",
    "Microsoft.Compute/virtualMachines/*/action",
    "Microsoft.Authorization/*",
    "Microsoft.Authorization/*/Write",
    "Microsoft.Authorization/*/read",
    "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
    "Microsoft.KeyVault/vaults/secrets/*",
    "Microsoft.KeyVault/*/read",
    "Microsoft.*/read",
    "*/subnets/*",
    "*Assignments*",
    "Microsoft.Directory/*",
    "microsoft.directory/applications/*",
];

fn pattern() -> impl Strategy<Value = String> {
    prop_oneof![select(WILDCARDS).prop_map(String::from), select(ACTIONS).prop_map(String::from)]
}

/// An Azure action or, one time in five, a directory action.
fn action() -> impl Strategy<Value = String> {
    prop_oneof![4 => arm_action(), 1 => select(DIRECTORY_ACTIONS).prop_map(String::from)]
}

fn arm_action() -> impl Strategy<Value = String> {
    select(ACTIONS).prop_map(String::from)
}

fn is_directory_action(action: &str) -> bool {
    action.to_ascii_lowercase().starts_with("microsoft.directory/")
}

fn kind() -> impl Strategy<Value = ActionKind> {
    prop_oneof![3 => Just(ActionKind::Action), 1 => Just(ActionKind::DataAction)]
}

// ---------------------------------------------------------------------------------------------
// Scopes as path segments, so ancestors and descendants are built by truncating and appending
// ---------------------------------------------------------------------------------------------

type Segs = Vec<String>;

fn scope_string(segs: &[String]) -> String {
    if segs.is_empty() {
        "/".into()
    } else {
        format!("/{}", segs.join("/"))
    }
}

fn sub_segs() -> impl Strategy<Value = Segs> {
    (1u8..=2).prop_map(|n| vec!["subscriptions".to_string(), sub_id(n).to_string()])
}

fn rg_segs() -> impl Strategy<Value = Segs> {
    select(RESOURCE_GROUPS).prop_map(|rg| vec!["resourceGroups".to_string(), rg.to_string()])
}

fn pairs(min: usize, max: usize) -> impl Strategy<Value = Segs> {
    prop::collection::vec((select(TYPES), select(NAMES)), min..=max).prop_map(|ps| ps.into_iter().flat_map(|(t, n)| [t.to_string(), n.to_string()]).collect())
}

/// `providers/{namespace}/{type}/{name}[/{type}/{name}…]`, one to three levels deep.
fn resource_segs() -> impl Strategy<Value = Segs> {
    (select(NAMESPACES), pairs(1, 3)).prop_map(|(ns, ps)| {
        let mut out = vec!["providers".to_string(), ns.to_string()];
        out.extend(ps);
        out
    })
}

fn concat(parts: &[&Segs]) -> Segs {
    parts.iter().flat_map(|p| p.iter().cloned()).collect()
}

/// Any scope the engine accepts: root, subscription, resource group, resource (nested or not,
/// under a resource group or directly under the subscription).
fn any_scope() -> impl Strategy<Value = Segs> {
    prop_oneof![
        1 => Just(Vec::new()),
        2 => sub_segs(),
        3 => (sub_segs(), rg_segs()).prop_map(|(s, r)| concat(&[&s, &r])),
        4 => (sub_segs(), rg_segs(), resource_segs()).prop_map(|(s, r, x)| concat(&[&s, &r, &x])),
        1 => (sub_segs(), resource_segs()).prop_map(|(s, x)| concat(&[&s, &x])),
    ]
}

#[derive(Debug, PartialEq)]
enum Level {
    Root,
    Subscription,
    ResourceGroup,
    Resource,
}

fn level(segs: &[String]) -> Level {
    match segs.len() {
        0 => Level::Root,
        2 => Level::Subscription,
        4 if segs[2].eq_ignore_ascii_case("resourceGroups") => Level::ResourceGroup,
        _ => Level::Resource,
    }
}

/// The makings of a scope beneath any other, generated without knowing the base (so shrinking
/// stays independent of it); [`descend`] picks the parts that fit the base's level.
#[derive(Clone, Debug)]
struct Below {
    /// Used beneath the root: any scope but the root.
    anywhere: Segs,
    rg: Segs,
    resource: Segs,
    pairs: Segs,
    /// Beneath a subscription: 0 = a group, 1 = a resource in a group, 2 = a resource in the subscription.
    pick: u8,
}

fn below() -> impl Strategy<Value = Below> {
    let anywhere = any_scope().prop_filter("strictly below the root", |s| !s.is_empty());
    (anywhere, rg_segs(), resource_segs(), pairs(1, 2), 0u8..3).prop_map(|(anywhere, rg, resource, pairs, pick)| Below { anywhere, rg, resource, pairs, pick })
}

/// A scope strictly beneath `base`.
fn descend(base: &Segs, b: &Below) -> Segs {
    match level(base) {
        Level::Root => b.anywhere.clone(),
        Level::Subscription => match b.pick {
            0 => concat(&[base, &b.rg]),
            1 => concat(&[base, &b.rg, &b.resource]),
            _ => concat(&[base, &b.resource]),
        },
        Level::ResourceGroup => concat(&[base, &b.resource]),
        Level::Resource => concat(&[base, &b.pairs]),
    }
}

/// Flips the case of the characters selected by `mask` (cycled over the string), non-ASCII
/// letters included when their other case is a single character.
fn recase(s: &str, mask: &[bool]) -> String {
    fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
        match (it.next(), it.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    }
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask.is_empty() || !mask[i % mask.len()] {
                c
            } else if c.is_lowercase() {
                single(c.to_uppercase()).unwrap_or(c)
            } else {
                single(c.to_lowercase()).unwrap_or(c)
            }
        })
        .collect()
}

fn case_mask() -> impl Strategy<Value = Vec<bool>> {
    prop_oneof![Just(vec![true]), prop::collection::vec(any::<bool>(), 1..=7),]
}

// ---------------------------------------------------------------------------------------------
// Roles, assignments, worlds
// ---------------------------------------------------------------------------------------------

fn permission_block() -> impl Strategy<Value = Permission> {
    use prop::collection::vec;
    (vec(pattern(), 0..=3), vec(pattern(), 0..=2), vec(pattern(), 0..=2), vec(pattern(), 0..=1))
        .prop_map(|(actions, not_actions, data_actions, not_data_actions)| Permission { actions, not_actions, data_actions, not_data_actions })
}

fn custom_role(n: u8, permissions: Vec<Permission>) -> RoleDefinition {
    named_custom_role(Uuid::from_u128(CUSTOM_ROLE_BASE + u128::from(n)), format!("prop custom {n}"), permissions)
}

fn named_custom_role(name: Uuid, role_name: String, permissions: Vec<Permission>) -> RoleDefinition {
    RoleDefinition { name, role_name, description: String::new(), role_type: RoleType::CustomRole, permissions, assignable_scopes: vec!["/".into()] }
}

const CUSTOM_ROLES: usize = 3;

/// Every built-in role: Azure's, then Entra's directory roles.
fn builtins() -> Vec<&'static RoleDefinition> {
    builtin_roles().iter().chain(directory_roles()).collect()
}

/// Who a custom role claims to be: usually itself, often a built-in role's GUID, or a built-in
/// role's name in some spelling.
#[derive(Clone, Debug)]
enum Claim {
    Own,
    BuiltinId(usize),
    BuiltinName(usize, Vec<bool>),
}

fn claim() -> impl Strategy<Value = Claim> {
    let n = builtins().len();
    prop_oneof![
        2 => Just(Claim::Own),
        1 => (0..n).prop_map(Claim::BuiltinId),
        1 => (0..n, case_mask()).prop_map(|(i, mask)| Claim::BuiltinName(i, mask)),
    ]
}

fn custom_roles() -> impl Strategy<Value = Vec<RoleDefinition>> {
    prop::collection::vec((prop::collection::vec(permission_block(), 1..=3), claim()), CUSTOM_ROLES).prop_map(|roles| {
        roles
            .into_iter()
            .enumerate()
            .map(|(i, (ps, claim))| {
                let own = custom_role(i as u8, ps);
                match claim {
                    Claim::Own => own,
                    Claim::BuiltinId(b) => RoleDefinition { name: builtins()[b].name, ..own },
                    Claim::BuiltinName(b, mask) => RoleDefinition { role_name: recase(&builtins()[b].role_name, &mask), ..own },
                }
            })
            .collect()
    })
}

fn claims_builtin(c: &RoleDefinition) -> bool {
    builtins().iter().any(|b| b.name == c.name || b.role_name.to_lowercase() == c.role_name.trim().to_lowercase())
}

/// Role GUIDs to assign: every built-in role, then the custom ones (which may repeat a built-in's).
fn role_ids(customs: &[RoleDefinition]) -> Vec<Uuid> {
    builtins().iter().map(|r| r.name).chain(customs.iter().map(|r| r.name)).collect()
}

fn role_index() -> impl Strategy<Value = usize> {
    let n = builtins().len() + CUSTOM_ROLES;
    // Custom roles carry the random patterns, so weight them as much as all built-ins together.
    prop_oneof![0..n, builtins().len()..n]
}

/// An assignment as the test wrote it: the scope string it was made at, and the engine's record.
#[derive(Clone, Debug)]
struct Made {
    scope: String,
    assignment: RoleAssignment,
}

fn make(n: usize, principal_id: Uuid, role: Uuid, scope: &str) -> Made {
    Made {
        scope: scope.to_string(),
        assignment: RoleAssignment {
            name: Uuid::from_u128(ASSIGNMENT_BASE + n as u128),
            scope: Scope::parse(scope).unwrap_or_else(|e| panic!("'{scope}': {e}")),
            role_definition_id: role,
            principal_id,
            principal_type: "ServicePrincipal".into(),
            description: None,
            created_on: OffsetDateTime::UNIX_EPOCH,
            created_by: None,
        },
    }
}

#[derive(Clone, Debug)]
struct World {
    customs: Vec<RoleDefinition>,
    made: Vec<Made>,
}

impl World {
    fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.customs.clone(), self.made.iter().map(|m| m.assignment.clone()))
    }

    /// The roles as Azure and Entra define them: every built-in, and each custom role that does not
    /// claim a built-in's GUID or name (ignoring case); one that does grants nothing.
    fn roles(&self) -> HashMap<Uuid, &RoleDefinition> {
        builtins().into_iter().chain(self.customs.iter().filter(|c| !claims_builtin(c))).map(|r| (r.name, r)).collect()
    }
}

const PRINCIPALS: u8 = 3;

/// Up to 30 assignments for three principals at random scopes.
fn world() -> impl Strategy<Value = World> {
    let assignment = (0..PRINCIPALS, role_index(), any_scope(), case_mask(), any::<bool>());
    (custom_roles(), prop::collection::vec(assignment, 0..=30)).prop_map(|(customs, raw)| {
        let ids = role_ids(&customs);
        let made = raw
            .into_iter()
            .enumerate()
            .map(|(i, (p, r, segs, mask, recased))| {
                let s = scope_string(&segs);
                let s = if recased { recase(&s, &mask) } else { s };
                make(i, principal(p), ids[r], &s)
            })
            .collect();
        World { customs, made }
    })
}

#[derive(Clone, Debug)]
struct Query {
    principal: Uuid,
    action: String,
    kind: ActionKind,
    scope: String,
}

/// A world and a query whose scope is usually at or below one of the world's assignments, asked
/// usually by that assignment's principal.
fn world_and_query() -> impl Strategy<Value = (World, Query)> {
    let who = prop_oneof![4 => (0..PRINCIPALS).prop_map(principal), 1 => Just(principal(PRINCIPALS))];
    // Where to ask: anywhere, or at / beneath the scope of one of the assignments.
    let near = (any::<prop::sample::Index>(), prop::option::weighted(0.75, below()), prop::bool::weighted(0.7));
    let place = prop_oneof![1 => any_scope().prop_map(|s| (s, None)), 3 => near.prop_map(|n| (Vec::new(), Some(n)))];
    (world(), who, action(), kind(), place).prop_map(|(w, mut principal, action, kind, (anywhere, near))| {
        let segs = match near {
            Some((i, below, follow)) if !w.made.is_empty() => {
                let made = &w.made[i.index(w.made.len())];
                if follow {
                    principal = made.assignment.principal_id;
                }
                let base = segs_of(&made.scope);
                match below {
                    Some(b) => descend(&base, &b),
                    None => base,
                }
            }
            _ => anywhere,
        };
        let q = Query { principal, action, kind, scope: scope_string(&segs) };
        (w, q)
    })
}

fn segs_of(scope: &str) -> Segs {
    scope.trim_matches('/').split('/').filter(|s| !s.is_empty()).map(String::from).collect()
}

fn check(snap: &Snapshot, principal_id: Uuid, action: &str, kind: ActionKind, scope: &str) -> Decision {
    let scope = Scope::parse(scope).unwrap_or_else(|e| panic!("'{scope}': {e}"));
    evaluate(snap, &AccessRequest { principal_id, action, kind, scope: &scope })
}

fn ask(snap: &Snapshot, q: &Query) -> Decision {
    check(snap, q.principal, &q.action, q.kind, &q.scope)
}

// ---------------------------------------------------------------------------------------------
// The oracle: the documented rules, re-derived by brute force
// ---------------------------------------------------------------------------------------------

/// `*` matches any run of characters, '/' included; a `*` that is a whole segment (`/*/`) may
/// also stand for no segment at all; ASCII case is ignored. Plain backtracking, no regex.
fn oracle_glob(pattern: &str, action: &str) -> bool {
    fn go(p: &[u8], i: usize, a: &[u8]) -> bool {
        if i == p.len() {
            return a.is_empty();
        }
        if p[i] == b'*' {
            let whole_segment = i > 0 && p[i - 1] == b'/' && p.get(i + 1) == Some(&b'/');
            if whole_segment && go(p, i + 2, a) {
                return true;
            }
            return (0..=a.len()).any(|k| go(p, i + 1, &a[k..]));
        }
        !a.is_empty() && a[0] == p[i] && go(p, i + 1, &a[1..])
    }
    go(pattern.to_ascii_lowercase().as_bytes(), 0, action.to_ascii_lowercase().as_bytes())
}

/// `ancestor` is `scope` or above it: lower-cased path prefix ending at a segment boundary.
fn oracle_covers(ancestor: &str, scope: &str) -> bool {
    let a = ancestor.trim().trim_end_matches('/').to_lowercase();
    let s = scope.trim().trim_end_matches('/').to_lowercase();
    a.is_empty() || s == a || (s.starts_with(&a) && s.as_bytes()[a.len()] == b'/')
}

fn oracle_block_grants(p: &Permission, action: &str, kind: ActionKind) -> bool {
    let (allow, deny) = match kind {
        ActionKind::Action => (&p.actions, &p.not_actions),
        ActionKind::DataAction => (&p.data_actions, &p.not_data_actions),
    };
    allow.iter().any(|x| oracle_glob(x, action)) && !deny.iter().any(|x| oracle_glob(x, action))
}

/// Directory roles grant directory actions only, every other role the rest only.
fn oracle_role_grants(role: &RoleDefinition, action: &str, kind: ActionKind) -> bool {
    (role.role_type == RoleType::DirectoryRole) == is_directory_action(action) && role.permissions.iter().any(|p| oracle_block_grants(p, action, kind))
}

/// Every assignment of the principal whose scope is the query's scope or above it and whose role
/// is of the kind that decides the action (or unknown: those are listed, granting nothing).
fn oracle_on_chain<'w>(w: &'w World, q: &Query) -> Vec<&'w Made> {
    let roles = w.roles();
    let relevant =
        |m: &Made| roles.get(&m.assignment.role_definition_id).is_none_or(|r| (r.role_type == RoleType::DirectoryRole) == is_directory_action(&q.action));
    w.made.iter().filter(|m| m.assignment.principal_id == q.principal && oracle_covers(&m.scope, &q.scope) && relevant(m)).collect()
}

fn oracle_allows(w: &World, q: &Query) -> bool {
    let roles = w.roles();
    oracle_on_chain(w, q).iter().any(|m| roles.get(&m.assignment.role_definition_id).is_some_and(|r| oracle_role_grants(r, &q.action, q.kind)))
}

fn summary(d: &Decision) -> String {
    format!("allowed={} reason={}", d.allowed, d.reason)
}

fn config() -> Config {
    // 256 cases unless PROPTEST_CASES says otherwise; no regression files, so the suite never
    // writes into the source tree (a failure prints its minimal case instead).
    Config { failure_persistence: None, ..Config::default() }
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// The oracle's glob agrees with the documented examples (guards the oracle itself).
#[test]
fn oracle_glob_agrees_with_documented_examples() {
    assert!(oracle_glob("*", "Microsoft.Network/loadBalancers/read"));
    assert!(oracle_glob("*/read", "microsoft.network/loadbalancers/READ"));
    assert!(!oracle_glob("*/read", "Microsoft.Network/loadBalancers/readx"));
    assert!(oracle_glob("Microsoft.Network/*", "Microsoft.Network/loadBalancers/write"));
    assert!(!oracle_glob("Microsoft.Network/*", "Microsoft.Compute/virtualMachines/read"));
    assert!(oracle_glob("Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write"));
    assert!(oracle_glob("Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action", "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"));
    assert!(oracle_covers("/", "/subscriptions/x"));
    assert!(oracle_covers("/subscriptions/x/resourceGroups/RG1", "/subscriptions/x/resourcegroups/rg1/providers/a.b/t/n"));
    assert!(!oracle_covers("/subscriptions/x/resourceGroups/rg1", "/subscriptions/x/resourceGroups/rg10"));
}

/// Every pattern of the vocabulary against every action, in three spellings, through the same
/// public matcher the engine uses: exhaustive, so rare pattern shapes (two whole-segment `*`s)
/// are checked on every run rather than when the random cases happen to draw them.
#[test]
fn action_matching_agrees_with_the_oracle_on_the_whole_vocabulary() {
    let mut disagreements = Vec::new();
    for pattern in WILDCARDS.iter().chain(ACTIONS) {
        for action in ACTIONS {
            for spelled in [action.to_string(), action.to_ascii_uppercase(), recase(action, &[true, false])] {
                let engine = kite_core::rbac::action::matches(pattern, &spelled);
                if engine != oracle_glob(pattern, &spelled) {
                    disagreements.push(format!("matches({pattern:?}, {spelled:?}) = {engine}"));
                }
            }
        }
    }
    assert!(disagreements.is_empty(), "engine and oracle disagree:\n{}", disagreements.join("\n"));
}

proptest! {
    #![proptest_config(config())]

    /// An assignment at a resource group never grants anything at a sibling resource group (in
    /// the same or another subscription, prefix-sharing names included), at anything under the
    /// sibling, at the subscription above it, or at the root, whatever the role.
    #[test]
    fn rg_assignment_never_reaches_a_sibling_rg_or_the_subscription(
        customs in custom_roles(),
        role in role_index(),
        (rg, other) in (0..RESOURCE_GROUPS.len(), 0..RESOURCE_GROUPS.len()).prop_filter("distinct groups", |(a, b)| a != b),
        sub in 1u8..=2,
        under_sibling in prop::option::of(resource_segs()),
        mask in case_mask(),
        action in action(),
        kind in kind(),
    ) {
        let p = principal(0);
        let here = format!("/subscriptions/{}/resourceGroups/{}", sub_id(sub), RESOURCE_GROUPS[rg]);
        let ids = role_ids(&customs);
        let world = World {
            customs,
            made: vec![
                make(0, p, ids[role], &recase(&here, &mask)),
                // Someone else holds Owner everywhere; that must not leak to `p`.
                make(1, principal(1), builtin_roles()[0].name, "/"),
            ],
        };
        prop_assert_eq!(&builtin_roles()[0].role_name, "Owner");
        let snap = world.snapshot();
        let mut sibling = segs_of(&format!("/subscriptions/{}/resourceGroups/{}", sub_id(sub), RESOURCE_GROUPS[other]));
        if let Some(tail) = &under_sibling {
            sibling.extend(tail.iter().cloned());
        }
        // The same group name in the other subscription is a different group.
        let same_name_elsewhere = format!("/subscriptions/{}/resourceGroups/{}", sub_id(3 - sub), RESOURCE_GROUPS[rg]);
        let targets = [scope_string(&sibling), same_name_elsewhere, format!("/subscriptions/{}", sub_id(sub)), "/".to_string()];
        for target in targets {
            let d = check(&snap, p, &action, kind, &target);
            prop_assert!(!d.allowed, "assignment at '{}' reached '{}': {}", here, target, summary(&d));
        }
    }

    /// An assignment at a scope grants at every scope beneath it exactly what it grants at the
    /// scope itself, through the same assignment.
    #[test]
    fn assignment_grants_at_every_descendant_exactly_what_it_grants_at_its_scope(
        customs in custom_roles(),
        role in role_index(),
        base in any_scope(),
        parts in below(),
        mask in case_mask(),
        action in action(),
        kind in kind(),
    ) {
        let p = principal(0);
        let ids = role_ids(&customs);
        let world = World { customs, made: vec![make(0, p, ids[role], &recase(&scope_string(&base), &mask))] };
        let snap = world.snapshot();
        let below = descend(&base, &parts);
        let at_scope = check(&snap, p, &action, kind, &scope_string(&base));
        let beneath = check(&snap, p, &action, kind, &scope_string(&below));
        prop_assert_eq!(at_scope.allowed, beneath.allowed, "at scope: {}\nbeneath: {}", summary(&at_scope), summary(&beneath));
        prop_assert_eq!(&at_scope.granted_by, &beneath.granted_by);
        prop_assert_eq!(&at_scope.assignments, &beneath.assignments);
    }

    /// Within a permission block a NotAction that matches the action always wins over Actions,
    /// even `*` or the action itself; other blocks still add up (Actions minus NotActions per
    /// block). The guaranteed-matching NotAction is built from the action, not from the oracle.
    #[test]
    fn not_action_in_the_same_block_always_wins_over_actions(
        mut blocks in prop::collection::vec(permission_block(), 1..=3),
        action in arm_action(),
        kind in kind(),
        which in 0usize..6,
        mask in case_mask(),
        scope in any_scope(),
    ) {
        let segments: Vec<&str> = action.split('/').collect();
        let cut = action.rfind('/').unwrap_or(0);
        let matching = match which {
            0 => action.clone(),
            1 => "*".to_string(),
            2 => format!("{}/*", segments[0]),
            3 => format!("*/{}", segments[segments.len() - 1]),
            4 => format!("{}*", &action[..cut]),
            _ => recase(&action, &mask),
        };
        // Block 0 lists the action (and everything) under Actions, but its NotActions match it.
        let first = &mut blocks[0];
        let (allow, deny) = match kind {
            ActionKind::Action => (&mut first.actions, &mut first.not_actions),
            ActionKind::DataAction => (&mut first.data_actions, &mut first.not_data_actions),
        };
        allow.push(recase(&action, &mask));
        allow.push("*".into());
        deny.push(matching.clone());
        let role = custom_role(0, blocks.clone());
        let p = principal(0);
        let snap = Snapshot::new([role.clone()], [make(0, p, role.name, &scope_string(&scope)).assignment]);
        let d = check(&snap, p, &action, kind, &scope_string(&scope));

        let other_blocks_grant = blocks[1..].iter().any(|b| oracle_block_grants(b, &action, kind));
        prop_assert_eq!(d.allowed, other_blocks_grant, "{}", summary(&d));
        if blocks.len() == 1 {
            prop_assert!(!d.allowed, "NotAction '{}' should remove '{}': {}", matching, action, summary(&d));
            prop_assert_eq!(d.assignments.len(), 1);
            let removed = matches!(&d.assignments[0].coverage, Coverage::RemovedByNotAction { .. });
            prop_assert!(removed, "{:?}", d.assignments[0].coverage);
        }
    }

    /// Issue 9: custom roles, built-in GUIDs and names among them, never give a principal an action
    /// its assignments do not grant when read with the built-in roles as Azure and Entra define
    /// them (and Azure roles never grant a directory action). Leaving out every custom role that
    /// claims a built-in changes no decision: such a role is never in effect.
    #[test]
    fn no_principal_gains_an_action_its_assignments_read_with_the_builtins_do_not_grant((w, q) in world_and_query()) {
        let d = ask(&w.snapshot(), &q);
        if d.allowed {
            prop_assert!(oracle_allows(&w, &q), "query {:?} allowed beyond the built-ins' definitions: {}", q, summary(&d));
            let g = d.granted_by.as_ref().unwrap();
            let custom = w.customs.iter().find(|c| c.name == g.role_definition_id && c.role_name == g.role_name);
            prop_assert!(custom.is_none_or(|c| !claims_builtin(c)), "granted through a custom role that claims a built-in: {:?}", custom);
        }
        let honest = World { customs: w.customs.iter().filter(|c| !claims_builtin(c)).cloned().collect(), made: w.made.clone() };
        let without = ask(&honest.snapshot(), &q);
        prop_assert_eq!(without.allowed, d.allowed, "{} vs {}", summary(&without), summary(&d));
        prop_assert_eq!(without.granted_by, d.granted_by);
    }

    /// The engine agrees with a brute-force scan of every assignment on random snapshots, and
    /// when it allows, the assignment it names really is on the chain and really grants.
    #[test]
    fn decision_agrees_with_brute_force_oracle((w, q) in world_and_query()) {
        let d = ask(&w.snapshot(), &q);
        let expected = oracle_allows(&w, &q);
        prop_assert_eq!(d.allowed, expected, "query {:?}: {}", q, summary(&d));
        if let Some(g) = &d.granted_by {
            let on_chain = oracle_on_chain(&w, &q);
            let m = on_chain.iter().find(|m| m.assignment.name == g.assignment_name);
            prop_assert!(m.is_some(), "granted by {} which is not on the chain", g.assignment_name);
            let m = m.unwrap();
            let roles = w.roles();
            prop_assert!(oracle_role_grants(roles[&m.assignment.role_definition_id], &q.action, q.kind));
            prop_assert_eq!(&g.role_name, &roles[&m.assignment.role_definition_id].role_name);
            prop_assert_eq!(g.role_definition_id, m.assignment.role_definition_id);
            let granted = matches!(&g.coverage, Coverage::Granted { .. });
            prop_assert!(granted);
        }
    }

    /// Changing the case of the action, of the request's scope, or of the scopes the assignments
    /// were made at (non-ASCII resource group names included) never changes the decision.
    #[test]
    fn case_of_action_and_scope_never_changes_the_decision(
        (w, q) in world_and_query(),
        action_mask in case_mask(),
        scope_mask in case_mask(),
        assignment_mask in case_mask(),
    ) {
        let snap = w.snapshot();
        let original = ask(&snap, &q);
        let recased_world = World {
            customs: w.customs.clone(),
            made: w.made.iter().enumerate()
                .map(|(i, m)| make(i, m.assignment.principal_id, m.assignment.role_definition_id, &recase(&m.scope, &assignment_mask)))
                .collect(),
        };
        let variants = [
            (&snap, Query { action: recase(&q.action, &action_mask), ..q.clone() }),
            (&snap, Query { scope: recase(&q.scope, &scope_mask), ..q.clone() }),
            (&snap, Query { action: q.action.to_uppercase(), scope: q.scope.to_uppercase(), ..q.clone() }),
        ];
        let recased_snap = recased_world.snapshot();
        for (snap, v) in variants.iter().map(|(s, v)| (*s, v)).chain(std::iter::once((&recased_snap, &q))) {
            let d = ask(snap, v);
            prop_assert_eq!(d.allowed, original.allowed, "{:?}: {} vs {}", v, summary(&d), summary(&original));
            let names = |d: &Decision| d.assignments.iter().map(|e| (e.assignment_name, e.coverage.clone())).collect::<Vec<_>>();
            prop_assert_eq!(names(&d), names(&original));
            prop_assert_eq!(
                d.granted_by.as_ref().map(|g| (g.assignment_name, g.coverage.clone())),
                original.granted_by.as_ref().map(|g| (g.assignment_name, g.coverage.clone()))
            );
            prop_assert_eq!(
                d.suggestion.as_ref().map(|s| s.role_definition_id),
                original.suggestion.as_ref().map(|s| s.role_definition_id)
            );
        }
    }

    /// A denied decision's `assignments` lists exactly the principal's assignments on the scope
    /// chain (no more, no fewer, no duplicates), most specific scope first, none of them granting.
    #[test]
    fn denied_decision_lists_exactly_the_principals_assignments_on_the_chain((w, q) in world_and_query()) {
        let d = ask(&w.snapshot(), &q);
        if !d.allowed {
            prop_assert!(d.granted_by.is_none());
            let mut listed: Vec<Uuid> = d.assignments.iter().map(|e| e.assignment_name).collect();
            let mut expected: Vec<Uuid> = oracle_on_chain(&w, &q).iter().map(|m| m.assignment.name).collect();
            listed.sort();
            expected.sort();
            prop_assert_eq!(&listed, &expected, "query {:?}: {}", q, summary(&d));
            let by_name: HashMap<Uuid, &Made> = w.made.iter().map(|m| (m.assignment.name, m)).collect();
            let roles = w.roles();
            for e in &d.assignments {
                let m = by_name[&e.assignment_name];
                prop_assert_eq!(e.role_definition_id, m.assignment.role_definition_id);
                match roles.get(&m.assignment.role_definition_id) {
                    Some(r) => prop_assert_eq!(&e.role_name, &r.role_name),
                    None => prop_assert!(e.role_name.starts_with("(missing role"), "{}", e.role_name),
                }
                prop_assert!(oracle_covers(&e.scope, &q.scope));
                let granted = matches!(e.coverage, Coverage::Granted { .. });
                prop_assert!(!granted);
            }
            let depths: Vec<usize> = d.assignments.iter().map(|e| segs_of(&e.scope).len()).collect();
            prop_assert!(depths.windows(2).all(|w| w[0] >= w[1]), "not most specific first: {:?}", depths);
            if d.assignments.is_empty() {
                let expected = if is_directory_action(&q.action) { "has no directory role assignment" } else { "has no role assignment" };
                prop_assert!(d.reason.contains(expected), "{}", d.reason);
            }
        } else {
            prop_assert!(d.assignments.is_empty());
        }
    }
}
