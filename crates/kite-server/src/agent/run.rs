//! `kite agent`: the node agent as its own process, one per node (a DaemonSet on the host
//! network), with no database, no signing key and no Secret. It reads its node's pods (a live
//! cluster's watch with a field selector, or a directory of YAML), serves pods on a plain-HTTP
//! listener, gets tokens from the kite server, and with `--redirect` owns the iptables rules that
//! bring pods' IMDS traffic to it, removing them when it exits.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use kite_k8s::ClusterSource;

use crate::agent::redirect::{self, Redirect};
use crate::agent::{remote, upstream, Agent, Tokens};
use crate::infra::{cluster, conn};

pub struct AgentConfig {
    pub listen: SocketAddr,
    pub remote: remote::Settings,
    /// Kubernetes YAML naming pods and aad-pod-identity objects, instead of a live cluster.
    pub pod_identity: Vec<PathBuf>,
    pub kubernetes: Option<kite_kube::Target>,
    pub upstream_imds: String,
    pub redirect: Option<RedirectConfig>,
    pub connections: conn::ConnectionLimits,
}

pub struct RedirectConfig {
    pub interfaces: Vec<String>,
    pub node_ip: Option<Ipv4Addr>,
    /// How often the rules are checked (and put back) and the guard's drops counted.
    pub upkeep: Duration,
}

pub async fn run(config: AgentConfig) -> Result<()> {
    let node = config.remote.node.clone();
    let source: Arc<dyn ClusterSource> = match &config.kubernetes {
        Some(target) => {
            tracing::info!(?target, node = %node, "reading this node's pods and the aad-pod-identity objects from the cluster");
            kite_kube::LiveCluster::start_for_node(kite_kube::client(target).await?, &node)
        }
        None => {
            let files = Arc::new(cluster::PodFiles::load(config.pod_identity.clone())?);
            cluster::spawn_reloader(files.clone());
            files
        }
    };
    let upstream = Arc::new(upstream::UpstreamImds::new(&config.upstream_imds)?);
    let remote = remote::NodeAgent::new(config.remote, source, crate::infra::clock::Clock::system())?;
    let agent = Agent { tokens: Arc::new(Tokens::Remote(remote)), metrics: Arc::default(), upstream };

    let (listener, bound) = conn::bind(config.listen, "--listen")?;
    let redirect = match &config.redirect {
        Some(r) => {
            let redirect = Arc::new(Redirect::new(&r.interfaces, bound.port(), r.node_ip)?);
            redirect.install().await?;
            redirect::spawn_upkeep(redirect.clone(), agent.metrics.clone(), r.upkeep);
            println!("kite: redirecting {}:80 from {} to port {}", redirect::METADATA_ADDRESS, r.interfaces.join(","), bound.port());
            Some(redirect)
        }
        None => None,
    };
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        shutdown.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    println!("kite: node agent listening on http://{bound}");
    tracing::info!(node = %node, "kite agent serving");
    let mut server = axum_server::from_tcp(listener).acceptor(conn::Limited::new(config.connections)).handle(handle);
    conn::tune(server.http_builder());
    let served = server.serve(crate::agent::service(agent)).await;
    // Pods' IMDS traffic must not be sent to an agent that is gone.
    if let Some(redirect) = redirect {
        redirect.remove().await;
        tracing::info!("IMDS redirect removed");
    }
    Ok(served?)
}
