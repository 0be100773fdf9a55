//! The audit trail's writer: request paths hand events to a bounded channel and never wait; one
//! background task writes them to the store in batches (every `flush_every` or `batch` events) and
//! prunes events older than the retention every hour. When the channel is full an event is dropped,
//! counted (`kite_audit_events_dropped_total`) and logged, so the token path is never slowed by
//! the trail. `layer` records management writes; `api` reads the trail back.

pub mod api;
pub mod layer;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kite_core::audit::AuditEvent;
use kite_store::Store;
use tokio::sync::{mpsc, oneshot};

use crate::infra::clock::Clock;
use crate::infra::metrics::Metrics;

/// How the trail is kept.
#[derive(Clone, Copy, Debug)]
pub struct AuditSettings {
    pub enabled: bool,
    /// Events older than this many days are pruned (1..=3650).
    pub retention_days: u32,
    /// Events waiting for the writer before new ones are dropped.
    pub capacity: usize,
    /// Most events one write carries.
    pub batch: usize,
    /// Longest an event waits for its batch.
    pub flush_every: Duration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        AuditSettings {
            enabled: true,
            retention_days: kite_core::audit::DEFAULT_RETENTION_DAYS,
            capacity: 65_536,
            batch: 512,
            flush_every: Duration::from_millis(200),
        }
    }
}

enum Msg {
    Event(Box<AuditEvent>),
    /// Everything sent before is written when this is answered.
    Flush(oneshot::Sender<()>),
}

pub struct AuditTrail {
    tx: Option<mpsc::Sender<Msg>>,
    retention_days: u32,
    metrics: Arc<Metrics>,
    /// Drops since the last warning, so a flood logs one line per second, not one per event.
    unlogged_drops: AtomicU64,
    last_warning: parking_lot::Mutex<Option<std::time::Instant>>,
}

impl AuditTrail {
    /// A trail that records nothing (`kite serve --no-audit`).
    pub fn off(metrics: Arc<Metrics>) -> AuditTrail {
        AuditTrail {
            tx: None,
            retention_days: kite_core::audit::DEFAULT_RETENTION_DAYS,
            metrics,
            unlogged_drops: AtomicU64::new(0),
            last_warning: parking_lot::Mutex::new(None),
        }
    }

    /// Starts the writer on the current runtime.
    pub fn start(store: Arc<dyn Store>, settings: AuditSettings, metrics: Arc<Metrics>, clock: Clock) -> AuditTrail {
        if !settings.enabled {
            return AuditTrail::off(metrics);
        }
        let (tx, rx) = mpsc::channel(settings.capacity.max(1));
        tokio::spawn(write_loop(store, rx, settings, metrics.clone(), clock));
        AuditTrail { tx: Some(tx), retention_days: settings.retention_days, ..AuditTrail::off(metrics) }
    }

    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues the event `build` makes; never waits. With the trail off nothing is built, so callers
    /// on hot paths pay nothing for it. A full queue drops the event, counted and logged.
    pub fn record(&self, build: impl FnOnce() -> AuditEvent) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(Msg::Event(Box::new(build()))).is_err() {
            self.metrics.audit_dropped();
            self.unlogged_drops.fetch_add(1, Ordering::Relaxed);
            let mut last = self.last_warning.lock();
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                *last = Some(std::time::Instant::now());
                let n = self.unlogged_drops.swap(0, Ordering::Relaxed);
                tracing::warn!(dropped = n, "audit trail queue full: events dropped (kite_audit_events_dropped_total counts them)");
            }
        }
    }

    /// Waits until every event queued before this call is written (a reader's own writes are then visible).
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write(store: &dyn Store, batch: &mut Vec<AuditEvent>, metrics: &Metrics) {
    if batch.is_empty() {
        return;
    }
    match store.append_audit_events(batch).await {
        Ok(()) => metrics.audit_written(batch.len()),
        Err(e) => {
            tracing::error!(events = batch.len(), "audit trail: writing a batch failed, its events are lost: {e}");
            for _ in 0..batch.len() {
                metrics.audit_dropped();
            }
        }
    }
    batch.clear();
}

async fn write_loop(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Msg>, settings: AuditSettings, metrics: Arc<Metrics>, clock: Clock) {
    let mut batch: Vec<AuditEvent> = Vec::with_capacity(settings.batch);
    let mut tick = tokio::time::interval(settings.flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(Msg::Event(e)) => {
                    batch.push(*e);
                    if batch.len() >= settings.batch {
                        write(store.as_ref(), &mut batch, &metrics).await;
                    }
                }
                Some(Msg::Flush(done)) => {
                    write(store.as_ref(), &mut batch, &metrics).await;
                    let _ = done.send(());
                }
                None => {
                    write(store.as_ref(), &mut batch, &metrics).await;
                    return;
                }
            },
            _ = tick.tick() => write(store.as_ref(), &mut batch, &metrics).await,
            _ = prune.tick() => {
                let before = clock.now() - time::Duration::days(i64::from(settings.retention_days));
                match store.prune_audit_events(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, retention_days = settings.retention_days, "audit trail: pruned events past the retention"),
                    Err(e) => tracing::error!("audit trail: pruning failed: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kite_core::audit::{Category, NewEvent, Shape};

    fn event(i: usize) -> AuditEvent {
        let new = NewEvent {
            shape: Shape::ActivityLog,
            category: Category::Token,
            caller: "client",
            authentication: "client_secret",
            operation_name: "Kite.Token/oauth2/token/action",
            resource_id: "r",
            correlation_id: &i.to_string(),
        };
        AuditEvent::new(new, time::OffsetDateTime::now_utc())
    }

    async fn metrics_text(metrics: &Arc<Metrics>) -> String {
        let response = crate::infra::metrics::render(axum::extract::State(metrics.clone())).await;
        let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// On one thread the writer cannot run while the request path records: a queue of 8 takes 8,
    /// the rest are dropped and counted, and recording never waits. Then everything queued is written.
    #[tokio::test]
    async fn a_full_queue_drops_and_counts_and_never_waits() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            kite_store::SqlStore::connect(&format!("sqlite://{}", dir.path().join("kite.db").display()), &kite_store::Kek::generate("test").unwrap())
                .await
                .unwrap(),
        );
        let metrics: Arc<Metrics> = Arc::default();
        let settings = AuditSettings { capacity: 8, flush_every: Duration::from_secs(3600), ..Default::default() };
        let trail = AuditTrail::start(store.clone(), settings, metrics.clone(), Clock::system());
        let started = std::time::Instant::now();
        for i in 0..1000 {
            trail.record(|| event(i));
        }
        assert!(started.elapsed() < Duration::from_secs(1), "recording waited: {:?}", started.elapsed());
        trail.flush().await;
        let text = metrics_text(&metrics).await;
        assert!(text.contains("kite_audit_events_dropped_total 992"), "{text}");
        assert!(text.contains("kite_audit_events_written_total 8"), "{text}");
        let filter = kite_core::audit::parse_filter("", time::OffsetDateTime::now_utc(), 1).unwrap();
        assert_eq!(store.list_audit_events(&filter).await.unwrap().len(), 8);
    }

    /// Events past the retention go when the writer starts, and then hourly.
    #[tokio::test]
    async fn events_past_the_retention_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            kite_store::SqlStore::connect(&format!("sqlite://{}", dir.path().join("kite.db").display()), &kite_store::Kek::generate("test").unwrap())
                .await
                .unwrap(),
        );
        let now = time::OffsetDateTime::now_utc();
        let (mut old, recent) = (event(1), event(2));
        old.event_timestamp = now - time::Duration::days(31);
        store.append_audit_events(&[old, recent.clone()]).await.unwrap();
        let settings = AuditSettings { retention_days: 30, ..Default::default() };
        let _trail = AuditTrail::start(store.clone(), settings, Arc::default(), Clock::system());
        let all = kite_core::audit::parse_filter("", now, 60).unwrap();
        for _ in 0..100 {
            if store.list_audit_events(&all).await.unwrap() == vec![recent.clone()] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the 31-day-old event is still there: {:?}", store.list_audit_events(&all).await.unwrap());
    }
}
