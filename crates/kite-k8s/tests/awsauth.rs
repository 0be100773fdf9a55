//! aws-auth and EKS access entries, on ConfigMaps as people write them (seed 004 and the usual traps).

use std::path::PathBuf;

use kite_k8s::awsauth::{
    apply, create_mapping, delete_mapping, list, map, permission_of, resolve, validate, AccessEntry, AccessPolicy, AccessPolicyAssociation, AccessScope,
    AuthenticationMode, AwsAuth, AwsAuthStore, Matched, Report, RoleMapping, Section,
};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/awsauth").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(name: &str) -> AwsAuth {
    AwsAuth::from_configmap_yaml(&fixture(name)).unwrap_or_else(|r| panic!("{r}"))
}

fn all(report: &Report) -> String {
    report.to_string()
}

const ACCT: &str = "860391000000";
const CREATOR: &str = "arn:aws:iam::860391000000:user/2049";
const USER_6248: &str = "arn:aws:iam::860391000000:user/6248";
const FULL: &str = "eks-console-dashboard-full-access-group";

#[test]
fn seed_004_user_6248_is_unmapped_and_the_miss_names_the_closest_entry_and_how_it_differs() {
    let auth = load("seed004.yaml");
    let miss = map(&auth, USER_6248, "AKIAEXAMPLE", None).unwrap_err();
    assert_eq!(miss.arn, USER_6248);
    assert_eq!(miss.canonical_arn.as_deref(), Some(USER_6248));
    let closest = miss.closest.as_ref().unwrap();
    assert_eq!(closest.arn, CREATOR);
    assert!(closest.difference.contains("name '2049' in the entry vs '6248'"), "{}", closest.difference);
    let text = miss.to_string();
    assert!(text.contains("no mapRoles or mapUsers entry is arn:aws:iam::860391000000:user/6248"), "{text}");
    assert!(text.contains("eksctl create iamidentitymapping --arn arn:aws:iam::860391000000:user/6248"), "{text}");
}

#[test]
fn seed_004_after_create_mapping_user_6248_maps_to_its_username_and_group() {
    let mut auth = load("seed004.yaml");
    let warnings = create_mapping(&mut auth, USER_6248, "6248", &[FULL.to_string()]).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let id = map(&auth, USER_6248, "AKIAEXAMPLE", None).unwrap();
    assert_eq!(id.username, "6248");
    assert_eq!(id.groups, vec![FULL.to_string()]);
    assert_eq!(id.matched, Matched::MapUser { index: 1, userarn: USER_6248.into() });
    // And it survives a round trip through the ConfigMap eksctl would write.
    let yaml = auth.to_configmap_yaml().unwrap();
    assert_eq!(AwsAuth::from_configmap_yaml(&yaml).unwrap(), auth);
}

#[test]
fn seed_004_giving_6248_system_masters_as_the_blog_did_warns_about_least_privilege() {
    let mut auth = load("seed004.yaml");
    let warnings = create_mapping(&mut auth, USER_6248, "6248", &["system:masters".to_string()]).unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].problem.contains("least privilege"), "{}", warnings[0]);
    let report = validate(&auth, Some(CREATOR));
    let masters: Vec<_> = report.warnings.iter().filter(|w| w.problem.contains("system:masters")).collect();
    assert_eq!(masters.len(), 1, "the creator is not warned about, 6248 is: {report}");
    assert!(masters[0].entry.contains("user/6248"));
}

#[test]
fn a_role_session_maps_through_its_role_with_the_session_name_templated() {
    let auth = load("seed004.yaml");
    let id = map(&auth, "arn:aws:sts::860391000000:assumed-role/ekscluster/jdoe@example.com", "ASIAEXAMPLE", None).unwrap();
    assert_eq!(id.username, "ekscluster:jdoe-example.com");
    assert_eq!(id.canonical_arn, "arn:aws:iam::860391000000:role/ekscluster");
    assert_eq!(id.matched, Matched::MapRole { index: 1, rolearn: "arn:aws:iam::860391000000:role/ekscluster".into() });
    // Upstream lower-cases both sides.
    assert!(map(&auth, "arn:aws:sts::860391000000:assumed-role/EKSCluster/jdoe", "ASIAEXAMPLE", None).is_ok());
}

#[test]
fn the_node_role_is_refused_offline_because_ec2_private_dns_name_needs_describe_instances() {
    let auth = load("seed004.yaml");
    let miss =
        map(&auth, "arn:aws:sts::860391000000:assumed-role/eksctl-testcluster-nodegroup-NodeInstanceRole/i-0123456789abcdef0", "ASIA", None).unwrap_err();
    assert!(miss.reason.contains("EC2PrivateDNSName"), "{miss}");
    assert!(miss.reason.contains("i-0123456789abcdef0") && miss.reason.contains("offline"), "{miss}");
}

#[test]
fn a_role_path_in_rolearn_is_an_error_and_the_miss_says_sts_drops_it_with_the_arn_to_write() {
    let yaml = fixture("role-path.yaml");
    let report = apply(&AwsAuth::default(), &yaml).unwrap_err();
    let e = &report.errors[0];
    assert_eq!(e.section, Section::MapRoles(Some(0)));
    assert_eq!(e.line, Some(8));
    assert!(e.problem.contains("role path /dev/"), "{e}");
    assert_eq!(e.fix.as_deref(), Some("rolearn: arn:aws:iam::860391000000:role/eks6248"));

    let auth = AwsAuth::from_configmap_yaml(&yaml).unwrap();
    let miss = map(&auth, "arn:aws:sts::860391000000:assumed-role/eks6248/feel", "ASIA", None).unwrap_err();
    assert_eq!(miss.canonical_arn.as_deref(), Some("arn:aws:iam::860391000000:role/eks6248"));
    assert_eq!(miss.closest.unwrap().difference, "rolearn has path /dev/ which STS drops; write arn:aws:iam::860391000000:role/eks6248");
}

#[test]
fn one_yaml_typo_refuses_the_whole_configmap_names_the_key_and_line_and_keeps_the_last_good_mapping() {
    let good = load("seed004.yaml");
    let report = apply(&good, &fixture("typo.yaml")).unwrap_err();
    let e = &report.errors[0];
    assert_eq!(e.entry, "data.mapRoles");
    assert_eq!(e.line, Some(14), "{e}"); // the mis-indented username
    assert!(e.problem.contains("drop every entry of mapRoles"), "{e}");
    assert!(all(&report).contains("the last good mapping stays in force (2 mapRoles, 1 mapUsers, 0 mapAccounts entries)"), "{report}");

    let mut store = AwsAuthStore::new(Some(CREATOR.into()));
    store.apply(&fixture("seed004.yaml")).unwrap();
    assert!(store.apply(&fixture("typo.yaml")).is_err());
    assert_eq!(store.current(), &good);
    assert!(map(store.current(), CREATOR, "AKIA", None).is_ok(), "the creator's mapping is still in force");
}

#[test]
fn a_list_written_as_yaml_instead_of_a_string_is_refused_with_the_block_scalar_fix() {
    let report = AwsAuth::from_configmap_yaml(&fixture("list-not-string.yaml")).unwrap_err();
    let e = &report.errors[0];
    assert_eq!(e.entry, "data.mapUsers");
    assert!(e.problem.contains("data values are strings"), "{e}");
    assert_eq!(e.fix.as_deref(), Some("write 'mapUsers: |' and indent the list under it"));
}

#[test]
fn a_misspelt_field_and_groups_written_as_a_string_are_errors_on_their_line() {
    let report = AwsAuth::from_configmap_yaml(&fixture("field-typo.yaml")).unwrap_err();
    let text = all(&report);
    assert!(text.contains("line 12: mapUsers[1]: unknown field 'userarm'; fix: did you mean 'userarn'?"), "{text}");
    assert!(text.contains("groups is the string 'eks-console-dashboard-full-access-group', not a list"), "{text}");
}

#[test]
fn every_trap_in_a_messy_configmap_gets_its_own_finding_with_the_corrected_value() {
    let auth = load("messy.yaml");
    let report = validate(&auth, None);
    let text = all(&report);
    let has = |needle: &str| assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    // An assumed-role ARN copied from get-caller-identity.
    has("mapRoles[0] (rolearn arn:aws:sts::111122223333:assumed-role/Admin/alice): rolearn is a role session ARN");
    has("fix: rolearn: arn:aws:iam::111122223333:role/Admin");
    // sts where iam belongs.
    has("role ARNs belong to service 'iam', not 'sts': write arn:aws:iam::111122223333:role/Deploy");
    // An 11-digit account.
    has("exactly 12 digits");
    // Unknown template variables, with the closest known one.
    has("unknown template variable {{SessionID}}");
    has("fix: dev:{{SessionName}}");
    has("unknown template variable {{ SessionName }}");
    // Duplicate ARN, case-insensitive.
    has("duplicates mapRoles[3]");
    // A role in mapUsers, an empty username, a mangled account.
    has("userarn names a role");
    has("mapUsers[1] (userarn arn:aws:iam::111122223333:user/alice): username is empty");
    has("fix: username: alice");
    has("mapAccounts[0] (1111-2222-3333): is not a 12-digit AWS account ID; fix: - \"111122223333\"");
    // Warnings: no groups, and system:masters.
    has("has no groups");
    has("grants system:masters");
    assert!(report.warnings.iter().any(|w| w.problem.contains("has no groups")));
    assert!(report.errors.iter().all(|e| !e.problem.contains("has no groups")));
}

#[test]
fn a_validation_error_refuses_the_configmap_with_lines_for_each_entry() {
    let report = apply(&AwsAuth::default(), &fixture("messy.yaml")).unwrap_err();
    let session = report.errors.iter().find(|e| e.section == Section::MapRoles(Some(0))).unwrap();
    assert_eq!(session.line, Some(8));
    let alice = report.errors.iter().find(|e| e.section == Section::MapUsers(Some(1))).unwrap();
    assert_eq!(alice.line, Some(32));
}

#[test]
fn accepting_a_configmap_warns_about_mappings_it_removes() {
    let mut store = AwsAuthStore::new(Some(CREATOR.into()));
    store.apply(&fixture("seed004.yaml")).unwrap();
    let mut smaller = store.current().clone();
    smaller.map_roles.retain(|r| !r.rolearn.contains("NodeInstanceRole"));
    let report = store.apply(&smaller.to_configmap_yaml().unwrap()).unwrap();
    assert!(all(&report).contains("NodeInstanceRole: was mapped (as 'system:node:{{EC2PrivateDNSName}}') and this ConfigMap removes it"), "{report}");
}

#[test]
fn map_accounts_lets_any_identity_of_the_account_in_under_its_arn_with_no_groups() {
    let auth = AwsAuth { map_accounts: vec![ACCT.into()], ..AwsAuth::default() };
    let id = map(&auth, "arn:aws:sts::860391000000:assumed-role/anything/s1", "ASIA", None).unwrap();
    assert_eq!(id.username, "arn:aws:iam::860391000000:role/anything");
    assert!(id.groups.is_empty());
    assert_eq!(id.matched, Matched::MapAccount { account: ACCT.into() });
}

#[test]
fn create_mapping_refuses_duplicates_session_arns_and_role_paths() {
    let mut auth = load("seed004.yaml");
    let e = create_mapping(&mut auth, "arn:aws:iam::860391000000:USER/2049", "x", &[FULL.into()]).unwrap_err().to_string();
    assert!(e.contains("already mapped by mapUsers[0]") || e.contains("not an ARN") || e.contains("unknown resource type"), "{e}");
    let e = create_mapping(&mut auth, CREATOR, "x", &[FULL.into()]).unwrap_err().to_string();
    assert!(e.contains("already mapped by mapUsers[0]"), "{e}");
    let e = create_mapping(&mut auth, "arn:aws:sts::860391000000:assumed-role/eks6248/feel", "x", &[FULL.into()]).unwrap_err().to_string();
    assert!(e.contains("rolearn: arn:aws:iam::860391000000:role/eks6248"), "{e}");
    let e = create_mapping(&mut auth, "arn:aws:iam::860391000000:role/dev/eks6248", "x", &[FULL.into()]).unwrap_err().to_string();
    assert!(e.contains("STS drops"), "{e}");
    assert_eq!(auth, load("seed004.yaml"), "refusals leave the mapping untouched");
    create_mapping(&mut auth, "arn:aws:iam::860391000000:role/eks6248", "eks6248:{{SessionName}}", &[FULL.into()]).unwrap();
    assert_eq!(auth.map_roles.len(), 3);
}

#[test]
fn delete_mapping_removes_one_or_all_and_lists_like_eksctl() {
    let mut auth = load("seed004.yaml");
    auth.map_users.push(auth.map_users[0].clone());
    auth.map_accounts.push(ACCT.into());
    let rows = list(&auth);
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0].arn, "arn:aws:iam::860391000000:role/eksctl-testcluster-nodegroup-NodeInstanceRole");
    assert_eq!(rows[4].account.as_deref(), Some(ACCT));
    assert_eq!(delete_mapping(&mut auth.clone(), &CREATOR.to_uppercase().replace("ARN:AWS:IAM", "arn:aws:iam"), false).unwrap(), 1);
    assert_eq!(delete_mapping(&mut auth, CREATOR, true).unwrap(), 2);
    let e = delete_mapping(&mut auth, "arn:aws:iam::860391000000:role/eksclustr", false).unwrap_err().to_string();
    assert!(e.contains("closest mapping: arn:aws:iam::860391000000:role/ekscluster"), "{e}");
    assert_eq!(delete_mapping(&mut auth, ACCT, false).unwrap(), 1);
}

#[test]
fn the_configmap_is_written_back_in_eksctl_order() {
    let auth = AwsAuth {
        map_roles: vec![RoleMapping {
            rolearn: "arn:aws:iam::860391000000:role/ekscluster".into(),
            username: "{{SessionName}}".into(),
            groups: vec![FULL.into()],
        }],
        ..AwsAuth::default()
    };
    let yaml = auth.to_configmap_yaml().unwrap();
    assert!(yaml.starts_with("apiVersion: v1\ndata:\n  mapRoles: |\n    - groups:\n      - eks-console-dashboard-full-access-group\n      rolearn: arn:aws:iam::860391000000:role/ekscluster\n      username: '{{SessionName}}'\n"), "{yaml}");
    assert!(yaml.ends_with("kind: ConfigMap\nmetadata:\n  name: aws-auth\n  namespace: kube-system\n"), "{yaml}");
    assert_eq!(AwsAuth::from_configmap_yaml(&yaml).unwrap(), auth);
}

fn entry(principal: &str, groups: &[&str], policies: Vec<AccessPolicyAssociation>) -> AccessEntry {
    AccessEntry { principal_arn: principal.into(), kubernetes_groups: groups.iter().map(|g| g.to_string()).collect(), username: None, policies }
}

#[test]
fn access_entries_win_over_aws_auth_in_api_and_config_map_and_each_mode_consults_only_its_sources() {
    let auth = load("seed004.yaml");
    let view = AccessPolicyAssociation { policy_arn: AccessPolicy::View.arn(), scope: AccessScope::Namespaces(vec!["dev".into()]) };
    let entries = vec![entry("arn:aws:iam::860391000000:role/ekscluster", &["from-access-entry"], vec![view])];
    let caller = "arn:aws:sts::860391000000:assumed-role/ekscluster/alice";

    let id = resolve(AuthenticationMode::ApiAndConfigMap, &entries, &auth, caller, "ASIA", None).unwrap();
    assert_eq!(id.groups, vec!["from-access-entry".to_string()]);
    assert_eq!(id.username, "arn:aws:sts::860391000000:assumed-role/ekscluster/alice");
    assert_eq!(id.permissions[0].cluster_role, "view");
    assert_eq!(id.permissions[0].scope, AccessScope::Namespaces(vec!["dev".into()]));

    let id = resolve(AuthenticationMode::ConfigMap, &entries, &auth, caller, "ASIA", None).unwrap();
    assert_eq!(id.groups, vec![FULL.to_string()], "CONFIG_MAP ignores access entries");

    // API ignores aws-auth, and says so when aws-auth would have matched.
    let miss = resolve(AuthenticationMode::Api, &[], &auth, caller, "ASIA", None).unwrap_err();
    assert!(miss.reason.contains("authentication mode API ignores aws-auth"), "{miss}");
    // API_AND_CONFIG_MAP falls back to aws-auth.
    let id = resolve(AuthenticationMode::ApiAndConfigMap, &[], &auth, caller, "ASIA", None).unwrap();
    assert_eq!(id.username, "ekscluster:alice");
}

#[test]
fn access_policies_map_to_the_equivalent_kubernetes_cluster_roles() {
    for (name, role) in
        [("AmazonEKSClusterAdminPolicy", "cluster-admin"), ("AmazonEKSAdminPolicy", "admin"), ("AmazonEKSEditPolicy", "edit"), ("AmazonEKSViewPolicy", "view")]
    {
        let assoc = AccessPolicyAssociation { policy_arn: format!("arn:aws:eks::aws:cluster-access-policy/{name}"), scope: AccessScope::Cluster };
        let p = permission_of(&assoc).unwrap();
        assert_eq!((p.cluster_role.as_str(), &p.scope), (role, &AccessScope::Cluster));
    }
    let bad = AccessPolicyAssociation { policy_arn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSVeiwPolicy".into(), scope: AccessScope::Cluster };
    let e = permission_of(&bad).unwrap_err().to_string();
    assert!(e.contains("did you mean AmazonEKSViewPolicy?"), "{e}");
    assert_eq!("API_AND_CONFIG_MAP".parse::<AuthenticationMode>().unwrap(), AuthenticationMode::ApiAndConfigMap);
    assert!("API_AND_CONFIGMAP".parse::<AuthenticationMode>().is_err());
}

#[test]
fn an_access_entry_for_a_role_with_a_path_matches_its_sessions() {
    let entries = vec![entry("arn:aws:iam::860391000000:role/dev/eks6248", &["devs"], vec![])];
    let id = resolve(AuthenticationMode::Api, &entries, &AwsAuth::default(), "arn:aws:sts::860391000000:assumed-role/eks6248/feel", "ASIA", None).unwrap();
    assert_eq!(id.groups, vec!["devs".to_string()]);
}
