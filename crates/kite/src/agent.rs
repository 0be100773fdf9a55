//! `kite agent`'s arguments: the node agent as its own process (see kite_server::agent::run).

use std::path::PathBuf;

use clap::Args;

use crate::args::ClusterArgs;

#[derive(Args)]
pub struct AgentArgs {
    /// The kite server's https:// URL (its Service in the cluster).
    #[arg(long, env = "KITE_SERVER")]
    server: String,
    /// CA certificate (PEM) the server's certificate chains to (kite's ca.pem, or the issuer of --tls-cert); default: the system's roots.
    #[arg(long)]
    server_ca: Option<PathBuf>,
    /// The agent's projected service-account token (audience kite), re-read as kubelet rotates it.
    #[arg(long, default_value = "/var/run/secrets/kite/token")]
    token_file: PathBuf,
    /// The node this agent runs on (the downward API's spec.nodeName); only its pods are served.
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// Address pods reach the agent at (NMI's port is 2579).
    #[arg(long, default_value = "0.0.0.0:2579")]
    listen: std::net::SocketAddr,
    /// Kubernetes YAML (Pods, aad-pod-identity objects) instead of a live cluster; re-read as it changes.
    #[arg(long = "pod-identity-dir", conflicts_with = "kubernetes")]
    pod_identity: Vec<PathBuf>,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// managed or standard (identities must be assigned to the node by the controller first).
    #[arg(long, default_value = "managed")]
    pod_identity_mode: kite_k8s::podidentity::mic::ControllerMode,
    /// Where excepted pods' calls and other IMDS paths go.
    #[arg(long, default_value = kite_server::agent::upstream::DEFAULT_IMDS)]
    upstream_imds: String,
    /// Install iptables rules that send pods' traffic to 169.254.169.254:80 to this agent (needs NET_ADMIN); removed on exit.
    #[arg(long, requires = "pod_interfaces")]
    redirect: bool,
    /// Interfaces pods' traffic arrives on, as iptables patterns (comma-separated), e.g. veth+,azv+,cali+,eni+.
    #[arg(long, value_delimiter = ',')]
    pod_interfaces: Vec<String>,
    /// With --redirect: DNAT to this node address instead of REDIRECT (for pod interfaces without an address of their own, as Calico's).
    #[arg(long, env = "NODE_IP")]
    node_ip: Option<std::net::Ipv4Addr>,
    /// Seconds between checks that the redirect rules are intact (and counts of spoofed packets).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    redirect_check_interval: u64,
    /// Tokens the agent caches (1 to 1000000).
    #[arg(long, default_value_t = kite_server::agent::cache::DEFAULT_CACHE_SIZE, value_parser = crate::cache_size)]
    imds_cache_size: std::num::NonZeroUsize,
    /// Connections the listener holds open at once.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
}

impl AgentArgs {
    pub fn config(self) -> kite_server::agent::run::AgentConfig {
        use kite_server::agent::{remote, run};
        run::AgentConfig {
            listen: self.listen,
            remote: remote::Settings {
                server: self.server,
                server_ca: self.server_ca,
                token_file: self.token_file,
                node: self.node_name,
                mode: self.pod_identity_mode,
                cache_size: self.imds_cache_size,
            },
            pod_identity: self.pod_identity,
            kubernetes: self.cluster.target(),
            upstream_imds: self.upstream_imds,
            redirect: self.redirect.then(|| run::RedirectConfig {
                interfaces: self.pod_interfaces,
                node_ip: self.node_ip,
                upkeep: std::time::Duration::from_secs(self.redirect_check_interval),
            }),
            connections: kite_server::infra::conn::ConnectionLimits {
                max_connections: self.max_connections as usize,
                idle_timeout: std::time::Duration::from_secs(60),
            },
        }
    }
}
