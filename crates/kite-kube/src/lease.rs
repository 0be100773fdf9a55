//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection` does it,
//! so that of several `kite serve` replicas exactly one runs the controller.
//!
//! Each round reads the Lease; creates it when missing; takes it over when its holder has not
//! renewed it within the lease duration; renews it when held. Every write is a create or a replace
//! carrying the resourceVersion just read, so of two candidates racing for a free Lease the API
//! server lets exactly one through (the other gets 409 Conflict and stays a follower).
//!
//! Expiry is measured on this process's own clock, from when it last saw the Lease's record change
//! (holder or renewTime), never by comparing another machine's renewTime with ours: replicas'
//! clocks need not agree. A leader that cannot renew for two thirds of the duration stops leading
//! before anyone else may take over; one that shuts down frees the Lease for the next at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::{oneshot, watch};

use kite_k8s::install::{Access, Where};

/// The Lease the controller runs under, in kite's namespace.
pub const NAME: &str = "kite-controller";

/// What a candidate needs: where the Lease lives, who it is, and how long a holder's claim lasts.
#[derive(Clone, Debug)]
pub struct Settings {
    pub namespace: String,
    /// Unique among the candidates (the pod's name and a random suffix).
    pub identity: String,
    pub duration: Duration,
}

impl Settings {
    /// A leader that has not renewed for this long stops leading (client-go's renewDeadline).
    fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// How often a candidate tries to take the Lease, and a leader renews it (client-go's
    /// retryPeriod: 2 s for its default 15 s lease); a freed Lease is taken within this.
    fn retry(&self) -> Duration {
        (self.duration / 5).clamp(Duration::from_millis(200), Duration::from_secs(2))
    }
}

/// What the server does with Leases, for its Role: create one (RBAC cannot name an object that
/// does not exist yet), then read and replace that one.
pub fn access() -> Vec<Access> {
    vec![
        Access::new(Where::Own, "coordination.k8s.io", "leases", &["create"]),
        Access::new(Where::Own, "coordination.k8s.io", "leases", &["get", "update"]).named(NAME),
    ]
}

/// The record another holder last wrote, and when this process first saw it.
struct Observed {
    record: (Option<String>, Option<Timestamp>),
    at: Instant,
}

struct Candidate {
    api: Api<Lease>,
    settings: Settings,
    observed: Option<Observed>,
}

fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Candidate {
    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.settings.identity.clone()),
            lease_duration_seconds: Some(i32::try_from(self.settings.duration.as_secs()).unwrap_or(i32::MAX).max(1)),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// One round: whether this process holds the Lease afterwards.
    async fn round(&mut self) -> kube::Result<bool> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(NAME.into()), namespace: Some(self.settings.namespace.clone()), ..Default::default() },
                spec: Some(self.spec(now, None, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.take().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mine = holder.as_deref() == Some(self.settings.identity.as_str());
        let record = (holder.clone(), spec.renew_time.as_ref().map(|t| t.0));
        if self.observed.as_ref().is_none_or(|o| o.record != record) {
            self.observed = Some(Observed { record, at: Instant::now() });
        }
        if !mine && holder.is_some() {
            let claimed = spec.lease_duration_seconds.and_then(|s| u64::try_from(s).ok()).map_or(self.settings.duration, Duration::from_secs);
            if self.observed.as_ref().is_some_and(|o| o.at.elapsed() < claimed) {
                return Ok(false);
            }
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        lease.spec = Some(match mine {
            true => self.spec(now, spec.acquire_time, transitions),
            false => self.spec(now, None, transitions.saturating_add(1)),
        });
        // The replace carries the resourceVersion read above: a write in between makes it a 409.
        match self.api.replace(NAME, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(e) if conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Frees the Lease if this process holds it: holder cleared, in a replace carrying the
    /// resourceVersion read, so the next candidate takes it at once.
    async fn release(&self) -> kube::Result<bool> {
        let Some(mut lease) = self.api.get_opt(NAME).await? else { return Ok(false) };
        let spec = lease.spec.get_or_insert_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(false);
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        spec.lease_duration_seconds = Some(1);
        self.api.replace(NAME, &PostParams::default(), &lease).await.map(|_| true)
    }
}

/// Stops a campaign on shutdown.
pub struct Resign {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Resign {
    /// Stops campaigning. A leader first says it no longer leads, then frees the Lease, so another
    /// replica takes over within a retry period rather than a whole lease duration (a rolling
    /// update, a drain), as client-go's ReleaseOnCancel.
    pub async fn resign(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts campaigning on the current tokio runtime; the receiver says whether this process leads
/// now. The task ends when every receiver is gone, or on [`Resign::resign`].
pub fn spawn(client: Client, settings: Settings) -> (watch::Receiver<bool>, Resign) {
    let (tx, rx) = watch::channel(false);
    let (stop, mut stopped) = oneshot::channel();
    let api = Api::namespaced(client, &settings.namespace);
    let mut candidate = Candidate { api, settings, observed: None };
    let task = tokio::spawn(async move {
        let settings = candidate.settings.clone();
        let mut renewed: Option<Instant> = None;
        while !tx.is_closed() {
            let leading = *tx.borrow();
            let round = tokio::time::timeout(settings.renew_deadline(), candidate.round()).await;
            match round.unwrap_or_else(|_| Err(kube::Error::Service(format!("no answer within {:?}", settings.renew_deadline()).into()))) {
                Ok(true) => {
                    renewed = Some(Instant::now());
                    if !leading {
                        tracing::info!(lease = %format!("{}/{NAME}", settings.namespace), identity = %settings.identity, "leading: this replica runs the controller");
                        tx.send_replace(true);
                    }
                }
                Ok(false) if leading => {
                    tracing::warn!(lease = %format!("{}/{NAME}", settings.namespace), "another replica took the lease: this one stops running the controller");
                    tx.send_replace(false);
                }
                Ok(false) => {}
                Err(e) => {
                    let why = match &e {
                        kube::Error::Api(s) if s.code == 401 || s.code == 403 => format!(
                            "{e} (grant get and update on leases named {NAME}, and create on leases, in namespace {} to kite's service account)",
                            settings.namespace
                        ),
                        _ => e.to_string(),
                    };
                    tracing::warn!("lease {}/{NAME}: {why}", settings.namespace);
                    if leading && renewed.is_none_or(|t| t.elapsed() >= settings.renew_deadline()) {
                        tracing::warn!(
                            "lease {}/{NAME} not renewed for {:?}: this replica stops running the controller",
                            settings.namespace,
                            settings.renew_deadline()
                        );
                        tx.send_replace(false);
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(settings.retry()) => {}
                _ = &mut stopped => break,
            }
        }
        if tx.send_replace(false) {
            match tokio::time::timeout(settings.renew_deadline(), candidate.release()).await {
                Ok(Ok(true)) => tracing::info!("lease {}/{NAME} released: another replica takes over the controller now", settings.namespace),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!("lease {}/{NAME} not released ({e}): another replica takes over once it expires", settings.namespace),
                Err(_) => tracing::warn!("lease {}/{NAME} not released in time: another replica takes over once it expires", settings.namespace),
            }
        }
    });
    (rx, Resign { stop, task })
}
