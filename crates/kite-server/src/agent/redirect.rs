//! Sends pods' IMDS traffic to the agent, as NMI does, so pods use the SDKs' defaults unchanged:
//! TCP to 169.254.169.254:80 arriving on a pod interface (`--pod-interfaces`, iptables patterns
//! such as `veth+`, `azv+`, `cali+`, `eni+`) is redirected to the agent's port. Host-network
//! traffic never passes PREROUTING, so it still reaches the node's real IMDS.
//!
//! A guard in the mangle table drops, before the redirect, pod packets for IMDS or the agent whose
//! source address does not route back through the interface they came in on: a pod that takes a
//! neighbour's IP never reaches the agent as that neighbour (the `rpfilter` match). The drops are
//! counted into `kite_agent_spoofed_packets` and logged.
//!
//! The rules live in chains of their own, re-asserted periodically (another program flushing
//! PREROUTING is undone) and removed when the agent exits.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::infra::metrics::Metrics;

const NAT_CHAIN: &str = "KITE-AGENT-IMDS";
const GUARD_CHAIN: &str = "KITE-AGENT-GUARD";
pub const METADATA_ADDRESS: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);

pub struct Redirect {
    interfaces: Vec<String>,
    port: u16,
    /// DNAT to this address (`--node-ip`); otherwise REDIRECT to the incoming interface's own
    /// address, which interfaces without one (Calico's) do not have.
    node_ip: Option<Ipv4Addr>,
}

/// One rule: its table and chain, and the match and target.
struct Rule {
    table: &'static str,
    chain: &'static str,
    spec: Vec<String>,
}

impl Redirect {
    pub fn new(interfaces: &[String], port: u16, node_ip: Option<Ipv4Addr>) -> Result<Redirect> {
        if interfaces.is_empty() {
            bail!("--redirect needs --pod-interfaces: the interface patterns pods' traffic arrives on (e.g. veth+,azv+,cali+,eni+)");
        }
        for i in interfaces {
            let name = i.strip_suffix('+').unwrap_or(i);
            if name.is_empty() || name.len() > 15 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                bail!("--pod-interfaces '{i}': an interface name or prefix (letters, digits, '.', '_', '-', at most 15) with an optional trailing '+', e.g. veth+");
            }
        }
        Ok(Redirect { interfaces: interfaces.to_vec(), port, node_ip })
    }

    fn rules(&self) -> Vec<Rule> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let imds = s(&["-p", "tcp", "-d", &METADATA_ADDRESS.to_string(), "--dport", "80"]);
        let port = self.port.to_string();
        let target = match self.node_ip {
            Some(ip) => s(&["-j", "DNAT", "--to-destination", &format!("{ip}:{port}")]),
            None => s(&["-j", "REDIRECT", "--to-ports", &port]),
        };
        let spoofed = s(&["-m", "rpfilter", "--invert", "-j", "DROP"]);
        let mut rules = Vec::new();
        for i in &self.interfaces {
            let on = s(&["-i", i]);
            for to in [imds.clone(), s(&["-p", "tcp", "--dport", &port])] {
                rules.push(Rule { table: "mangle", chain: GUARD_CHAIN, spec: [on.clone(), to, spoofed.clone()].concat() });
            }
            rules.push(Rule { table: "nat", chain: NAT_CHAIN, spec: [on, imds.clone(), target.clone()].concat() });
        }
        rules
    }

    /// Creates (or re-creates) both chains and hooks them into PREROUTING.
    pub async fn install(&self) -> Result<()> {
        for (table, chain) in [("mangle", GUARD_CHAIN), ("nat", NAT_CHAIN)] {
            // -N fails when the chain exists (left by an agent killed with -9); -F empties it.
            let _ = iptables(&["-t", table, "-N", chain]).await;
            iptables(&["-t", table, "-F", chain]).await?;
        }
        for rule in self.rules() {
            let args: Vec<&str> = ["-t", rule.table, "-A", rule.chain].into_iter().chain(rule.spec.iter().map(String::as_str)).collect();
            iptables(&args).await?;
        }
        for (table, chain) in [("mangle", GUARD_CHAIN), ("nat", NAT_CHAIN)] {
            if iptables(&["-t", table, "-C", "PREROUTING", "-j", chain]).await.is_err() {
                iptables(&["-t", table, "-I", "PREROUTING", "1", "-j", chain]).await?;
            }
        }
        Ok(())
    }

    /// Whether every rule and both hooks are in place.
    async fn intact(&self) -> bool {
        for (table, chain) in [("mangle", GUARD_CHAIN), ("nat", NAT_CHAIN)] {
            if iptables(&["-t", table, "-C", "PREROUTING", "-j", chain]).await.is_err() {
                return false;
            }
        }
        for rule in self.rules() {
            let args: Vec<&str> = ["-t", rule.table, "-C", rule.chain].into_iter().chain(rule.spec.iter().map(String::as_str)).collect();
            if iptables(&args).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Unhooks and deletes both chains.
    pub async fn remove(&self) {
        for (table, chain) in [("mangle", GUARD_CHAIN), ("nat", NAT_CHAIN)] {
            while iptables(&["-t", table, "-D", "PREROUTING", "-j", chain]).await.is_ok() {}
            let _ = iptables(&["-t", table, "-F", chain]).await;
            if let Err(e) = iptables(&["-t", table, "-X", chain]).await {
                tracing::warn!("removing the {table} chain {chain}: {e}");
            }
        }
    }

    /// Packets the guard has dropped since its chain was made.
    async fn dropped(&self) -> Result<u64> {
        let listing = iptables(&["-t", "mangle", "-L", GUARD_CHAIN, "-v", "-x", "-n"]).await?;
        Ok(listing
            .lines()
            .filter_map(|l| {
                let mut cols = l.split_whitespace();
                let packets = cols.next()?.parse::<u64>().ok()?;
                (cols.nth(1)? == "DROP").then_some(packets)
            })
            .sum())
    }
}

/// Runs iptables (waiting for the xtables lock), returning its output or its complaint.
async fn iptables(args: &[&str]) -> Result<String> {
    let run = tokio::process::Command::new("iptables").arg("-w").arg("5").args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .context("iptables did not finish within 15 s")?
        .context("cannot run iptables (install the iptables package; kite agent needs NET_ADMIN for --redirect)")?;
    if !out.status.success() {
        bail!("iptables {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every `every`: puts the rules back if something removed them, and reports the guard's drops.
pub fn spawn_upkeep(redirect: Arc<Redirect>, metrics: Arc<Metrics>, every: Duration) {
    tokio::spawn(async move {
        let mut counted = 0u64;
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if !redirect.intact().await {
                tracing::warn!("the IMDS redirect rules were changed by someone else; putting them back");
                if let Err(e) = redirect.install().await {
                    tracing::error!("the IMDS redirect could not be restored: {e}");
                }
                counted = 0;
            }
            match redirect.dropped().await {
                Ok(now) if now > counted => {
                    tracing::warn!(
                        packets = now - counted,
                        "dropped packets from pod interfaces to IMDS or the agent whose source address does not route back through the interface they came in on: a pod is using another pod's IP"
                    );
                    metrics.spoofed_packets(now - counted);
                    counted = now;
                }
                Ok(now) => counted = now,
                Err(e) => tracing::warn!("reading the IMDS guard's counters: {e}"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_patterns_are_checked_before_any_rule_is_written() {
        for bad in ["", "+", "veth*", "a b", "eth0;reboot", "averyveryverylongname+"] {
            let e = Redirect::new(&[bad.to_string()], 2579, None).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("--pod-interfaces"), "{bad}: {e}");
        }
        assert!(Redirect::new(&[], 2579, None).is_err());
    }

    #[test]
    fn each_pod_interface_gets_a_guard_for_imds_and_the_agent_port_and_a_redirect() {
        let r = Redirect::new(&["veth+".into(), "cali+".into()], 2579, Some(Ipv4Addr::new(10, 0, 0, 4))).unwrap();
        let rules: Vec<String> = r.rules().iter().map(|r| format!("{} {} {}", r.table, r.chain, r.spec.join(" "))).collect();
        assert_eq!(rules.len(), 6);
        assert!(
            rules.contains(&"mangle KITE-AGENT-GUARD -i veth+ -p tcp -d 169.254.169.254 --dport 80 -m rpfilter --invert -j DROP".to_string()),
            "{rules:#?}"
        );
        assert!(rules.contains(&"mangle KITE-AGENT-GUARD -i cali+ -p tcp --dport 2579 -m rpfilter --invert -j DROP".to_string()), "{rules:#?}");
        assert!(
            rules.contains(&"nat KITE-AGENT-IMDS -i cali+ -p tcp -d 169.254.169.254 --dport 80 -j DNAT --to-destination 10.0.0.4:2579".to_string()),
            "{rules:#?}"
        );
        let plain = Redirect::new(&["veth+".into()], 2579, None).unwrap();
        assert!(plain.rules().iter().any(|r| r.spec.ends_with(&["-j".into(), "REDIRECT".into(), "--to-ports".into(), "2579".into()])));
    }
}
