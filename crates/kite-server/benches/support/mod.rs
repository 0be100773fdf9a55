//! What the benches share: a server configuration over a throw-away SQLite file.

use std::path::{Path, PathBuf};

use kite_server::Config;

pub fn config(home: &Path, database_url: &str, eks_cluster: Option<&str>, aws_auth: Option<PathBuf>) -> Config {
    Config {
        home: home.to_path_buf(),
        database_url: Some(database_url.into()),
        kek: kite_server::infra::kek::KekInput { file: None, env: None },
        listen: "127.0.0.1:0".parse().expect("socket address"),
        insecure_http: true,
        public_url: None,
        tls_names: Vec::new(),
        dns_domain: None,
        token_lifetime_secs: 3600,
        issuer_cas: Vec::new(),
        issuer_access: Default::default(),
        key_retire_grace_secs: 300,
        k8s_rbac: Vec::new(),
        eks_cluster: eks_cluster.map(str::to_string),
        aws_auth,
        access_entries: None,
        authentication_mode: kite_k8s::awsauth::AuthenticationMode::ConfigMap,
        entra_audience: None,
        entra_mapping: None,
        pod_identity: Vec::new(),
        kubernetes: None,
        cluster_issuer: None,
        agent_account: None,
        pod_identity_mode: Default::default(),
        cluster_identity: None,
        agent_listen: None,
        upstream_imds: kite_server::agent::upstream::DEFAULT_IMDS.into(),
        imds_cache_size: kite_server::agent::cache::DEFAULT_CACHE_SIZE,
        connections: Default::default(),
        webhook_ca_config_map: None,
        webhook_aws_region: "us-east-1".into(),
        webhook_listen: None,
        webhook_client_ca: None,
        audit: Default::default(),
        doctor_interval: None,
        leader_election: kite_server::LeaderElection::new("kite-system".into(), std::time::Duration::from_secs(15)),
        tls_files: None,
    }
}
