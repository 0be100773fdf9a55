//! What one access check costs, and that it does not grow with the number of role assignments.
//!
//! The world: one subscription, 1 000 resource groups, 100 000 role assignments spread over them
//! (2 000 principals, every built-in role in turn, one in a hundred at the subscription itself).
//! The principal being checked holds Reader on `rg-0500`, Network Contributor on the subscription
//! and AcrPull on twenty other groups, in every world size.
//!
//! Run: `cargo bench -p kite-core --bench check_access -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use kite_core::rbac::engine::{evaluate, AccessRequest, Decision, Snapshot};
use kite_core::rbac::{builtin_roles, ActionKind, RoleAssignment};
use kite_core::Scope;
use time::OffsetDateTime;
use uuid::Uuid;

const SUB: Uuid = Uuid::from_u128(0x5ab0_0001);
const RESOURCE_GROUPS: usize = 1_000;
const PRINCIPALS: u128 = 2_000;
const PRINCIPAL_BASE: u128 = 0x9000_0000;
/// The principal whose access is checked.
const ME: Uuid = Uuid::from_u128(0xbe4c_0001);

fn sub_scope() -> String {
    format!("/subscriptions/{SUB}")
}

fn rg_scope(i: usize) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-{i:04}")
}

fn role(name: &str) -> Uuid {
    builtin_roles().iter().find(|r| r.role_name == name).map(|r| r.name).unwrap_or_else(|| panic!("no built-in role '{name}'"))
}

fn assignment(n: usize, principal_id: Uuid, role_definition_id: Uuid, scope: &str) -> RoleAssignment {
    RoleAssignment {
        name: Uuid::from_u128(0xa5_0000_0000 + n as u128),
        scope: Scope::parse(scope).unwrap_or_else(|e| panic!("{e}")),
        role_definition_id,
        principal_id,
        principal_type: "ServicePrincipal".into(),
        description: None,
        created_on: OffsetDateTime::UNIX_EPOCH,
        created_by: None,
    }
}

/// `total` assignments: the checked principal's 22, then others' spread over the groups.
fn world(total: usize) -> Snapshot {
    let mut all = vec![assignment(0, ME, role("Reader"), &rg_scope(500)), assignment(1, ME, role("Network Contributor"), &sub_scope())];
    let acr_pull = role("AcrPull");
    all.extend((0..20).map(|k| assignment(2 + k, ME, acr_pull, &rg_scope(k * 37 % RESOURCE_GROUPS))));
    let roles = builtin_roles();
    let mine = all.len();
    all.extend((mine..total).map(|i| {
        let principal = Uuid::from_u128(PRINCIPAL_BASE + (i as u128 % PRINCIPALS));
        let scope = if i % 100 == 0 { sub_scope() } else { rg_scope(i * 7_919 % RESOURCE_GROUPS) };
        assignment(i, principal, roles[i % roles.len()].name, &scope)
    }));
    Snapshot::new([], all)
}

struct Check {
    name: &'static str,
    action: &'static str,
    scope: Scope,
    allowed: bool,
}

fn checks() -> Vec<Check> {
    let parse = |s: String| Scope::parse(&s).unwrap_or_else(|e| panic!("{e}"));
    vec![
        Check {
            name: "allowed_at_resource_group",
            action: "Microsoft.Resources/subscriptions/resourceGroups/read",
            scope: parse(rg_scope(500)),
            allowed: true,
        },
        Check {
            name: "allowed_2_levels_deep_inherited_from_rg",
            action: "Microsoft.Network/virtualNetworks/subnets/read",
            scope: parse(format!("{}/providers/Microsoft.Network/virtualNetworks/vnet-1/subnets/snet-1", rg_scope(500))),
            allowed: true,
        },
        Check {
            name: "allowed_deep_chain_inherited_from_subscription",
            action: "Microsoft.Network/virtualNetworks/subnets/join/action",
            scope: parse(format!("{}/providers/Microsoft.Network/virtualNetworks/vnet-1/subnets/snet-1/ipConfigurations/ipc-1", rg_scope(700))),
            allowed: true,
        },
        Check { name: "denied_with_suggestion", action: "Microsoft.Authorization/roleAssignments/write", scope: parse(rg_scope(500)), allowed: false },
    ]
}

fn run(snap: &Snapshot, check: &Check) -> Decision {
    evaluate(snap, &AccessRequest { principal_id: ME, action: check.action, kind: ActionKind::Action, scope: &check.scope })
}

/// Fails the run if a check does not decide what it is meant to measure.
fn verify(snap: &Snapshot, check: &Check) {
    let d = run(snap, check);
    assert_eq!(d.allowed, check.allowed, "{}: {}", check.name, d.reason);
    if !check.allowed {
        assert!(d.suggestion.is_some() && d.assignments.len() == 2, "{}: {}", check.name, d.reason);
    }
}

fn check_access(c: &mut Criterion) {
    let snap = world(100_000);
    let mut group = c.benchmark_group("check_access_100k");
    for check in checks() {
        verify(&snap, &check);
        group.bench_function(check.name, |b| b.iter(|| run(black_box(&snap), black_box(&check))));
    }
    group.finish();
}

fn scaling(c: &mut Criterion) {
    let check = checks().into_iter().find(|c| c.name == "allowed_deep_chain_inherited_from_subscription").unwrap_or_else(|| unreachable!());
    let mut group = c.benchmark_group("check_access_vs_assignments");
    for total in [1_000, 10_000, 100_000] {
        let snap = world(total);
        verify(&snap, &check);
        group.bench_with_input(BenchmarkId::from_parameter(total), &snap, |b, snap| b.iter(|| run(black_box(snap), black_box(&check))));
    }
    group.finish();
}

criterion_group!(benches, check_access, scaling);
criterion_main!(benches);
