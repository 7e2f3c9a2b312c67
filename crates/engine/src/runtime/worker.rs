//! Workers, heartbeats and the reaper.

use std::sync::Arc;
use std::time::Duration;

use store::SlotLimits;
use tokio::sync::watch;

use super::agent_loop::{execute, fail_run, RunError};
use super::Stop;
use crate::Engine;

fn micros(d: Duration) -> i64 {
    d.as_micros().min(i64::MAX as u128) as i64
}

impl Engine {
    fn slot_limits(&self) -> SlotLimits {
        SlotLimits { agent: self.config.runtime.agent_max_concurrency, org: self.config.runtime.org_max_concurrency }
    }

    /// Starts the workers and the reaper. The leases this process held before a restart
    /// are released first, so its interrupted runs resume at once (on a single-process
    /// database: every lease; on a shared one only this replica's, as another replica's
    /// are requeued by the reaper when they expire).
    pub async fn start_workers(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        match self.store.release_all_leases(&self.own_lease_prefix()).await {
            Ok(n) if n > 0 => tracing::warn!(runs = n, "resuming runs interrupted by the previous shutdown or crash"),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "could not release stale leases"),
        }
        let mut handles = Vec::new();
        // Other replicas' commits: events for live readers here, cancels for runs here.
        match self.store.notices().await {
            Ok(Some(notices)) => {
                let engine = self.clone();
                let sd = shutdown.clone();
                handles.push(tokio::spawn(async move { engine.notice_loop(notices, sd).await }));
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot listen for other replicas' notices; streams fall back to polling the log"),
        }
        for i in 0..self.config.runtime.workers {
            let engine = self.clone();
            let sd = shutdown.clone();
            handles.push(tokio::spawn(async move { engine.worker_loop(i, sd).await }));
        }
        let engine = self.clone();
        handles.push(tokio::spawn(async move { engine.reaper_loop(shutdown).await }));
        handles
    }

    async fn worker_loop(self: Arc<Self>, index: usize, mut shutdown: watch::Receiver<bool>) {
        let owner = format!("{}/w{index}", self.process_id);
        let lease = self.config.runtime.lease;
        loop {
            if *shutdown.borrow() {
                return;
            }
            // Register interest before looking, so a wake-up between the two is not lost.
            let notified = self.wake.notified();
            let lane = if self.config.runtime.shared_database { Some(self.claim_lane.lock().await) } else { None };
            let now = self.now();
            let claimed = self.store.claim_run(&owner, now, now + micros(lease), self.slot_limits()).await;
            drop(lane);
            let claimed = match claimed {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "claiming a run failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let Some(claimed) = claimed else {
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            };
            // A slot this run frees is taken by this worker's next claim: no other worker
            // needs waking (waking all of them made each completion a thundering herd).
            self.process(claimed.run, claimed.attempts, &owner, &mut shutdown).await;
        }
    }

    async fn process(self: &Arc<Self>, run: store::RunRecord, attempts: i64, owner: &str, shutdown: &mut watch::Receiver<bool>) {
        let run_id = run.id.clone();
        if attempts > self.config.runtime.max_attempts {
            let err = RunError::new(
                "InterruptedError",
                format!("the run was interrupted {} times (worker crash or restart) and was not retried again", attempts - 1),
            );
            if fail_run(self, &run, Some(owner), err).await == super::agent_loop::Outcome::Finished {
                if let Ok(Some(r)) = self.store.run(&run_id).await {
                    log_run_end(&r);
                }
                // A failed run hands the session to its queue like any other (§6.1).
                self.drain_queue(&run.session_id).await;
            }
            return;
        }
        let (stop_tx, stop_rx) = watch::channel(if run.cancel_requested { Stop::Cancelled } else { Stop::Running });
        let stop_tx = Arc::new(stop_tx);
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(run_id.clone(), stop_tx.clone());

        // Heartbeat: renew the lease every third of it; losing it stops the run unwritten.
        let hb_engine = self.clone();
        let hb_owner = owner.to_string();
        let hb_run = run_id.clone();
        let hb_stop = stop_tx.clone();
        let heartbeat = tokio::spawn(async move {
            let lease = hb_engine.config.runtime.lease;
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                let until = hb_engine.now() + micros(lease);
                match hb_engine.store.heartbeat(&hb_run, &hb_owner, until).await {
                    // On a shared database a cancel may come from another replica: the
                    // notice stops the run at once; this re-check covers a lost notice.
                    Ok(true) if hb_engine.config.runtime.shared_database => {
                        if let Ok(Some(r)) = hb_engine.store.run(&hb_run).await {
                            if r.cancel_requested {
                                hb_engine.signal_cancel(&hb_run);
                            }
                        }
                    }
                    Ok(true) => {}
                    Ok(false) => {
                        let _ = hb_stop.send(Stop::LeaseLost);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, run_id = %hb_run, "heartbeat failed"),
                }
            }
        });
        let sd_stop = stop_tx.clone();
        let mut sd = shutdown.clone();
        let shutdown_watch = tokio::spawn(async move {
            let _ = sd.wait_for(|v| *v).await;
            let _ = sd_stop.send(Stop::Shutdown);
        });

        let session_id = run.session_id.clone();
        let outcome = execute(self, run, owner, stop_rx).await;
        heartbeat.abort();
        shutdown_watch.abort();
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&run_id);
        tracing::debug!(run_id = %run_id, ?outcome, "run ended");
        // A run that ended completed or failed hands the session to its queue (§6.1).
        if outcome == super::agent_loop::Outcome::Finished {
            if let Ok(Some(r)) = self.store.run(&run_id).await {
                log_run_end(&r);
                if matches!(r.state, store::RunState::Completed | store::RunState::Failed) {
                    self.drain_queue(&session_id).await;
                }
            }
        }
    }

    async fn notice_loop(self: Arc<Self>, mut notices: futures::stream::BoxStream<'static, store::Notice>, mut shutdown: watch::Receiver<bool>) {
        use futures::StreamExt;
        loop {
            let notice = tokio::select! {
                n = notices.next() => n,
                _ = shutdown.changed() => return,
            };
            match notice {
                Some(store::Notice::Events { session_id, .. }) => self.bus.wake(&session_id),
                Some(store::Notice::CancelRequested { run_id }) => self.signal_cancel(&run_id),
                Some(store::Notice::Resync) => self.bus.wake(""),
                None => return,
            }
        }
    }

    /// A cancel requested anywhere reaches the run if it executes here and is not
    /// already stopping for another reason (an S16 interrupt signalled in this process).
    fn signal_cancel(&self, run_id: &str) {
        if let Some(tx) = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(run_id) {
            tx.send_if_modified(|s| {
                let running = *s == Stop::Running;
                if running {
                    *s = Stop::Cancelled;
                }
                running
            });
        }
    }

    /// Signals a run executing in this process (S9, S16). Returns false if not here.
    pub fn signal_run(&self, run_id: &str, stop: Stop) -> bool {
        match self.running.lock().unwrap_or_else(|p| p.into_inner()).get(run_id) {
            Some(tx) => {
                let _ = tx.send(stop);
                true
            }
            None => false,
        }
    }

    async fn reaper_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let every = (self.config.runtime.lease / 3).max(Duration::from_millis(200));
        let mut last_purge = std::time::Instant::now() - Duration::from_secs(3600);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            let now = self.now();
            let expired = match self.store.expired_runs(now).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "reaper could not list expired leases");
                    continue;
                }
            };
            let any = !expired.is_empty();
            for (run_id, attempts) in expired {
                tracing::warn!(run_id = %run_id, attempts, "lease expired; returning the run to the queue");
                if let Err(e) = self.store.requeue_run(&run_id, now).await {
                    tracing::error!(error = %e, run_id = %run_id, "could not requeue");
                }
            }
            if any {
                self.wake.notify_waiters();
            }
            // Incognito sessions end 15 min (configurable) after their last activity.
            if self.config.incognito {
                let before = now - micros(self.config.runtime.incognito_ttl);
                match self.store.delete_idle_sessions(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sessions = n, "incognito sessions expired"),
                    Err(e) => tracing::warn!(error = %e, "expiring incognito sessions failed"),
                }
            }
            // Event-log retention (§12.4): a purged range is `not_resumable`.
            if last_purge.elapsed() >= Duration::from_secs(60).min(self.config.runtime.stream_retention / 2) {
                last_purge = std::time::Instant::now();
                let before = now - micros(self.config.runtime.stream_retention);
                match self.store.purge_events(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, "purged stream events past retention"),
                    Err(e) => tracing::warn!(error = %e, "purging old stream events failed"),
                }
            }
        }
    }
}

/// Every run end at `info` (failures at `warn`), with what an operator looks for first,
/// and the run metrics (`/metrics`).
pub(crate) fn log_run_end(r: &store::RunRecord) {
    let duration_ms = match (r.started_at, r.finished_at) {
        (Some(s), Some(f)) => (f - s).max(0) as f64 / 1000.0,
        _ => 0.0,
    };
    let tokens = |k: &str| r.usage.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
    let credits = r.usage.get("credit_cost").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    let state = r.state.as_str();
    metrics::counter!("openloop_runs_finished_total", "state" => state).increment(1);
    if r.finished_at.is_some() && r.started_at.is_some() {
        metrics::histogram!("openloop_run_duration_seconds", "state" => state).record(duration_ms / 1000.0);
    }
    let (input_tokens, output_tokens) = (tokens("input_tokens"), tokens("output_tokens"));
    match r.state {
        store::RunState::Failed => tracing::warn!(
            run_id = %r.id, session_id = %r.session_id, agent_id = %r.agent_id, organization_id = %r.organization_id,
            state, duration_ms, input_tokens, output_tokens, credits, attempts = r.attempts,
            error = r.error_message.as_deref().unwrap_or(""),
            "run failed"
        ),
        _ => tracing::info!(
            run_id = %r.id, session_id = %r.session_id, agent_id = %r.agent_id, organization_id = %r.organization_id,
            state, duration_ms, input_tokens, output_tokens, credits, attempts = r.attempts,
            "run ended"
        ),
    }
}
