//! `map` never grants the groups of an entry that is not the caller.

use kite_core::aws::arn::{canonicalize, Arn};
use kite_k8s::awsauth::{map, AwsAuth, Matched, RoleMapping, UserMapping};
use proptest::prelude::*;

fn account() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["111122223333".to_string(), "444455556666".to_string()])
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "A", "b", "ab", "Ab"]).prop_map(str::to_string)
}

/// Any identity ARN a mapping or a caller could name, paths and sessions included.
fn arn() -> impl Strategy<Value = String> {
    (account(), name(), prop::sample::select(vec!["role", "role-path", "user", "user-path", "session"]), name()).prop_map(|(acct, n, kind, s)| match kind {
        "role" => format!("arn:aws:iam::{acct}:role/{n}"),
        "role-path" => format!("arn:aws:iam::{acct}:role/p/{n}"),
        "user" => format!("arn:aws:iam::{acct}:user/{n}"),
        "user-path" => format!("arn:aws:iam::{acct}:user/p/{n}"),
        _ => format!("arn:aws:sts::{acct}:assumed-role/{n}/s{s}"),
    })
}

fn canonical(s: &str) -> Option<String> {
    Arn::parse(s).ok().map(|a| canonicalize(&a).to_string().to_lowercase())
}

proptest! {
    #[test]
    fn map_never_grants_groups_of_an_entry_whose_canonical_arn_differs_from_the_callers(
        roles in prop::collection::vec(arn(), 0..6),
        users in prop::collection::vec(arn(), 0..6),
        accounts in prop::collection::vec(account(), 0..2),
        caller in arn(),
    ) {
        // Every entry has a group of its own, so a granted group identifies its entry.
        let auth = AwsAuth {
            map_roles: roles.iter().enumerate().map(|(i, a)| RoleMapping { rolearn: a.clone(), username: format!("r{i}"), groups: vec![format!("role-{i}")] }).collect(),
            map_users: users.iter().enumerate().map(|(i, a)| UserMapping { userarn: a.clone(), username: format!("u{i}"), groups: vec![format!("user-{i}")] }).collect(),
            map_accounts: accounts.clone(),
        };
        let want = canonical(&caller);
        if let Ok(id) = map(&auth, &caller, "AKIA", None) {
            prop_assert_eq!(Some(id.canonical_arn.to_lowercase()), want.clone());
            for g in &id.groups {
                let (list, i) = g.split_once('-').unwrap();
                let i: usize = i.parse().unwrap();
                let entry = if list == "role" { &roles[i] } else { &users[i] };
                prop_assert_eq!(entry.to_lowercase(), want.clone().unwrap(), "granted {} of {}", g, entry);
            }
            match &id.matched {
                Matched::MapRole { rolearn, .. } => prop_assert_eq!(rolearn.to_lowercase(), want.clone().unwrap()),
                Matched::MapUser { userarn, .. } => prop_assert_eq!(userarn.to_lowercase(), want.clone().unwrap()),
                Matched::MapAccount { account } => {
                    prop_assert!(id.groups.is_empty());
                    prop_assert!(caller.contains(account.as_str()));
                }
                Matched::AccessEntry { .. } => prop_assert!(false, "map never consults access entries"),
            }
        } else {
            // A miss only when no entry is the caller and the account is not auto-mapped.
            let any = roles.iter().chain(&users).any(|a| Some(a.to_lowercase()) == want);
            let acct_mapped = accounts.iter().any(|a| caller.contains(a.as_str()));
            prop_assert!(!any && !acct_mapped);
        }
    }
}
