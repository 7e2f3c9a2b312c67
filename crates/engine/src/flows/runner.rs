//! The flow runtime: a DAG scheduler that runs independent nodes in parallel and commits
//! each node's result before its dependants start, so a run resumed after a crash skips
//! every node that already finished (and never calls a model twice for one).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde_json::{Map, Value};
use store::{FlowNodeResult, FlowRunEnd, FlowRunRecord, FlowRunState, StoreError};
use tokio::sync::{watch, OnceCell};

use super::document::{validate, Graph, Node, Ref};
use super::nodes::{hidden_session_id, run_node};
use crate::{Caller, Engine, KeyInfo, KeyKind, Scope};

/// Nodes of one run executing at once.
const NODE_CONCURRENCY: usize = 16;

/// A node's settled result inside a scheduler.
#[derive(Debug, Clone)]
enum Settled {
    Done(Map<String, Value>),
    Skipped,
}

/// What a node of a running flow can reach: the engine, the run, its identity.
pub struct RunCtx {
    pub engine: Arc<Engine>,
    pub run: FlowRunRecord,
    /// The lease owner when this process executes the run (commits are fenced by it).
    pub owner: Option<String>,
    stop: AtomicBool,
    caller: OnceCell<Caller>,
}

impl RunCtx {
    pub fn new(engine: Arc<Engine>, run: FlowRunRecord, owner: Option<String>) -> Arc<Self> {
        Arc::new(RunCtx { engine, run, owner, stop: AtomicBool::new(false), caller: OnceCell::new() })
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The run's acting user and team scope, as a caller (for agent nodes).
    pub async fn caller(&self) -> Result<Caller, String> {
        self.caller
            .get_or_try_init(|| async {
                let user = self.engine.store.user(&self.run.user_id).await.map_err(|e| e.to_string())?.ok_or("the run's user no longer exists")?;
                let memberships: Vec<(String, String)> =
                    self.engine.store.teams_of_user(&user.id).await.map_err(|e| e.to_string())?.into_iter().map(|(t, r)| (t.id, r)).collect();
                let (kind, scope) = match &self.run.team_id {
                    Some(t) => (KeyKind::Team { team_id: t.clone() }, Scope::Team(t.clone())),
                    None => (KeyKind::Personal { user_id: user.id.clone() }, Scope::Unscoped),
                };
                Ok(Caller { key: KeyInfo { id: format!("flow:{}", self.run.id), kind, created_by: None }, user, scope, memberships })
            })
            .await
            .cloned()
    }

    /// A saved flow the run's owner can use (subflows, loops).
    pub async fn saved_graph(&self, id: &str) -> Result<Graph, String> {
        let f = self.engine.store.flow(id).await.map_err(|e| e.to_string())?;
        let f = f.filter(|f| match &self.run.team_id {
            Some(t) => f.team_id.as_deref() == Some(t),
            None => f.team_id.is_none() && f.owner_user_id.as_deref() == Some(self.run.user_id.as_str()),
        });
        let f = f.ok_or_else(|| format!("flow {id} not found"))?;
        validate(&f.document).map_err(|e| format!("flow {id} is invalid: {}", e.first().map(ToString::to_string).unwrap_or_default()))
    }

    /// Stores a file of this run (F10/F11 find it by `run_id`).
    pub async fn write_run_file(&self, name: &str, bytes: Vec<u8>) -> Result<String, String> {
        let name = crate::files::sanitize_file_name(name).map_err(|_| format!("invalid file name {name:?}"))?;
        let blobs = self.engine.blobs.as_ref().ok_or("file storage is not configured")?;
        let key = format!("flowfiles/{}", wire::ids::new_id("file"));
        let size = bytes.len() as i64;
        blobs.put(&key, bytes::Bytes::from(bytes)).await.map_err(|e| format!("storing {name} failed: {e}"))?;
        let rec = store::SessionFileRecord {
            session_id: run_namespace(&self.run.id),
            file_name: name.clone(),
            media_type: crate::files::media_type_for(&name).to_string(),
            size,
            blob_key: key,
            created_at: self.engine.now(),
        };
        if let Some(old) = self.engine.store.upsert_flow_file(&rec.session_id, &rec).await.map_err(|e| e.to_string())? {
            let _ = blobs.delete(&old).await;
        }
        Ok(name)
    }
}

impl RunCtx {
    /// Stores a run file (F10) from a stream of chunks, without holding it in memory; an
    /// `Err` chunk aborts and stores nothing.
    pub async fn write_run_file_stream(
        &self,
        name: &str,
        chunks: impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Unpin,
    ) -> Result<String, String> {
        let name = crate::files::sanitize_file_name(name).map_err(|_| format!("invalid file name {name:?}"))?;
        let blobs = self.engine.blobs.as_ref().ok_or("file storage is not configured")?;
        let key = format!("flowfiles/{}", wire::ids::new_id("file"));
        let meta = blobs.put_stream(&key, chunks, u64::MAX).await.map_err(|e| format!("storing {name} failed: {e}"))?;
        let rec = store::SessionFileRecord {
            session_id: run_namespace(&self.run.id),
            file_name: name.clone(),
            media_type: crate::files::media_type_for(&name).to_string(),
            size: meta.size as i64,
            blob_key: key,
            created_at: self.engine.now(),
        };
        if let Some(old) = self.engine.store.upsert_flow_file(&rec.session_id, &rec).await.map_err(|e| e.to_string())? {
            let _ = blobs.delete(&old).await;
        }
        Ok(name)
    }
}

/// The one transition table of flow runs (§6.2): QUEUED → STARTED → RUNNING → DONE |
/// FAILED, any live state → TERMINATING → TERMINATED.
pub fn can_move(from: FlowRunState, to: FlowRunState) -> bool {
    use FlowRunState::*;
    matches!(
        (from, to),
        (Queued, Started)
            | (Started, Running)
            | (Running, Done)
            | (Running, Failed)
            | (Started, Failed)
            | (Queued, Failed)
            | (Queued | Started | Running, Terminating)
            | (Terminating, Terminated)
    )
}

/// The flow-file namespace of a run's own files.
pub fn run_namespace(run_id: &str) -> String {
    format!("run:{run_id}")
}

/// A spawned task that is aborted when its handle is dropped (a stopped run's nodes end
/// with it).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// Where results go: committed to the store (a run's top level) or kept in memory
/// (inside a loop or subflow, whose node commits as one).
enum Sink<'a> {
    Durable { owner: &'a str },
    Memory,
}

/// Runs `graph` to the end from `settled` (results already committed). Returns the flow
/// outputs and the credits spent by the nodes run here.
async fn schedule(
    ctx: &Arc<RunCtx>,
    graph: &Graph,
    inputs: &Map<String, Value>,
    mut settled: HashMap<String, Settled>,
    scope: &str,
    sink: Sink<'_>,
) -> Result<(Map<String, Value>, f64), String> {
    // Kahn's algorithm over the unsettled nodes: each node counts its unsettled
    // dependencies; settling one decrements its dependants (O(edges) per run, not a scan
    // of every pending node per completion).
    let nodes = &graph.nodes;
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let mut waiting = vec![0usize; nodes.len()];
    let mut dependants: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut left = 0;
    for (i, n) in nodes.iter().enumerate() {
        if settled.contains_key(&n.id) {
            continue;
        }
        left += 1;
        let mut deps: Vec<&str> = n.deps().filter(|d| !settled.contains_key(*d)).collect();
        deps.sort_unstable();
        deps.dedup();
        for d in deps {
            if let Some(&j) = index.get(d) {
                waiting[i] += 1;
                dependants[j].push(i);
            }
        }
    }
    // Ready nodes start in document (topological) order.
    let mut ready: std::collections::BTreeSet<usize> = (0..nodes.len()).filter(|&i| !settled.contains_key(&nodes[i].id) && waiting[i] == 0).collect();
    let mut in_flight: FuturesUnordered<futures::future::BoxFuture<'_, (usize, Result<super::nodes::NodeOutput, String>)>> = FuturesUnordered::new();
    let mut cost = 0.0;
    while left > 0 {
        if ctx.stopped() {
            return Err("stopped".into());
        }
        // Start (or skip) ready nodes up to the concurrency bound.
        while in_flight.len() < NODE_CONCURRENCY {
            let Some(i) = ready.pop_first() else { break };
            let node = &nodes[i];
            match inputs_of(node, inputs, &settled) {
                None => {
                    if let Sink::Durable { owner } = sink {
                        let r = node_result(ctx, node, "skipped", Value::Null, 0.0);
                        commit_all(ctx, owner, vec![(r, vec![format!("Node {} skipped (its branch was not taken)", node.id)])]).await?;
                    }
                    settled.insert(node.id.clone(), Settled::Skipped);
                    left -= 1;
                    release(i, &dependants, &mut waiting, &mut ready);
                }
                Some(vars) => {
                    if let Sink::Durable { .. } = sink {
                        if node.kind.calls_model() || matches!(node.kind.name(), "http_request" | "web_fetch" | "loop" | "subflow") {
                            let _ = ctx.engine.store.append_flow_log(&ctx.run.id, vec![format!("Node {} ({}) started", node.id, node.kind.name())]).await;
                        }
                    }
                    let node_scope = if scope.is_empty() { node.id.clone() } else { format!("{scope}-{}", node.id) };
                    let top = matches!(sink, Sink::Durable { .. });
                    let ctx = ctx.clone();
                    if top {
                        // A top-level node runs as its own task: its writes (a loop's
                        // per-item commits, an agent's session) progress while this
                        // scheduler awaits a commit. Polled only from here, a node could
                        // hold a database transaction open that the commit waits for.
                        let node = node.clone();
                        let task = AbortOnDrop(tokio::spawn(async move { run_node(&ctx, &node, vars, &node_scope, true).await }));
                        in_flight.push(Box::pin(async move { (i, task.await.unwrap_or_else(|e| Err(format!("the node's task ended: {e}")))) }));
                    } else {
                        in_flight.push(Box::pin(async move {
                            let out = run_node(&ctx, node, vars, &node_scope, top).await;
                            (i, out)
                        }));
                    }
                }
            }
        }
        if left == 0 {
            break;
        }
        if in_flight.is_empty() {
            let stuck = (0..nodes.len()).find(|&i| !settled.contains_key(&nodes[i].id)).map(|i| nodes[i].id.clone()).unwrap_or_default();
            return Err(format!("node {stuck} can never run (its dependencies do not finish)"));
        }
        let Some(first) = next_or_stop(ctx, &mut in_flight).await else {
            return Err("stopped".into());
        };
        // Every node that finished meanwhile is committed with it (one write).
        let mut finished = vec![first];
        while let Some(Some(more)) = futures::FutureExt::now_or_never(in_flight.next()) {
            finished.push(more);
        }
        let mut done = Vec::with_capacity(finished.len());
        for (i, out) in finished {
            let node = &nodes[i];
            let out = out.map_err(|e| format!("node {} ({}) failed: {e}", node.id, node.kind.name()))?;
            cost += out.credit_cost;
            done.push((i, out));
        }
        if let Sink::Durable { owner } = sink {
            // Results move into the commit and back out of it (a loop's long result list
            // is not copied for the write).
            let batch: Vec<(FlowNodeResult, Vec<String>)> = done
                .into_iter()
                .map(|(i, out)| {
                    let node = &nodes[i];
                    let mut log = out.log;
                    log.push(if out.credit_cost > 0.0 {
                        format!("Node {} ({}) finished, {} credits", node.id, node.kind.name(), (out.credit_cost * 10000.0).round() / 10000.0)
                    } else {
                        format!("Node {} ({}) finished", node.id, node.kind.name())
                    });
                    (node_result(ctx, node, "done", Value::Object(out.ports), out.credit_cost), log)
                })
                .collect();
            let results = commit_all(ctx, owner, batch).await?;
            for r in results {
                let ports = match r.output {
                    Value::Object(p) => p,
                    _ => Map::new(),
                };
                if let Some(&i) = index.get(r.node_id.as_str()) {
                    settled.insert(r.node_id, Settled::Done(ports));
                    left -= 1;
                    release(i, &dependants, &mut waiting, &mut ready);
                }
            }
        } else {
            for (i, out) in done {
                settled.insert(nodes[i].id.clone(), Settled::Done(out.ports));
                left -= 1;
                release(i, &dependants, &mut waiting, &mut ready);
            }
        }
    }
    let mut outputs = Map::new();
    for (name, r) in &graph.outputs {
        outputs.insert(name.clone(), value_of(r, inputs, &settled).unwrap_or(Value::Null));
    }
    Ok((outputs, cost))
}

fn release(i: usize, dependants: &[Vec<usize>], waiting: &mut [usize], ready: &mut std::collections::BTreeSet<usize>) {
    for &d in &dependants[i] {
        waiting[d] -= 1;
        if waiting[d] == 0 {
            ready.insert(d);
        }
    }
}

/// The next finished node, or None when the run is told to stop (checked every 50 ms).
async fn next_or_stop<F: std::future::Future>(ctx: &RunCtx, in_flight: &mut FuturesUnordered<F>) -> Option<F::Output> {
    loop {
        tokio::select! {
            r = in_flight.next() => return r,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                if ctx.stopped() {
                    return None;
                }
            }
        }
    }
}

fn node_result(ctx: &RunCtx, node: &Node, status: &str, output: Value, credit_cost: f64) -> FlowNodeResult {
    FlowNodeResult { run_id: ctx.run.id.clone(), node_id: node.id.clone(), status: status.into(), output, credit_cost, created_at: ctx.engine.now() }
}

/// Commits node results together (the writer groups concurrent writes into one
/// transaction) and hands them back; a refusal (lease lost, already committed) stops the
/// run here.
async fn commit_all(ctx: &RunCtx, owner: &str, batch: Vec<(FlowNodeResult, Vec<String>)>) -> Result<Vec<FlowNodeResult>, String> {
    let results = futures::future::join_all(batch.into_iter().map(|(r, log)| async move {
        let res = ctx.engine.store.commit_flow_node(owner, &r, log).await;
        (r, res)
    }))
    .await;
    let mut out = Vec::with_capacity(results.len());
    for (r, res) in results {
        match res {
            Ok(true) => out.push(r),
            Ok(false) => {
                ctx.stop.store(true, Ordering::Relaxed);
                return Err("stopped".into());
            }
            Err(e) => return Err(format!("committing node {} failed: {e}", r.node_id)),
        }
    }
    Ok(out)
}

fn value_of(r: &Ref, inputs: &Map<String, Value>, settled: &HashMap<String, Settled>) -> Option<Value> {
    match r {
        Ref::Input(n) => Some(inputs.get(n).cloned().unwrap_or(Value::String(String::new()))),
        Ref::Node(n, p) => match settled.get(n)? {
            Settled::Done(ports) => ports.get(p).cloned(),
            Settled::Skipped => None,
        },
    }
}

/// A node's input values; None when it must be skipped (a source was skipped or is an
/// untaken condition branch).
fn inputs_of(node: &Node, inputs: &Map<String, Value>, settled: &HashMap<String, Settled>) -> Option<HashMap<String, Value>> {
    if node.after.iter().any(|a| matches!(settled.get(a), Some(Settled::Skipped))) {
        return None;
    }
    let mut vars = HashMap::with_capacity(node.wires.len());
    for (port, r) in &node.wires {
        vars.insert(port.clone(), value_of(r, inputs, settled)?);
    }
    Some(vars)
}

/// A graph's outputs and the credits its nodes spent, or why it stopped.
pub type GraphResult = Result<(Map<String, Value>, f64), String>;

/// Runs a graph in memory (a loop item or a subflow): (outputs, credits). Boxed as a
/// `Send` future: the recursion (a node runs a graph of nodes) otherwise hides from the
/// compiler that a top-level node's task may move between threads.
pub fn run_inline<'a>(ctx: &'a Arc<RunCtx>, graph: &'a Graph, inputs: Map<String, Value>, scope: &'a str) -> futures::future::BoxFuture<'a, GraphResult> {
    Box::pin(async move {
        let inputs = bind_defaults(graph, inputs);
        schedule(ctx, graph, &inputs, HashMap::new(), scope, Sink::Memory).await
    })
}

/// Missing inputs take their `default`, else `""` (§8.4).
pub fn bind_defaults(graph: &Graph, mut inputs: Map<String, Value>) -> Map<String, Value> {
    for d in &graph.inputs {
        if !inputs.contains_key(&d.name) {
            inputs.insert(d.name.clone(), d.default.clone().unwrap_or(Value::String(String::new())));
        }
    }
    inputs
}

impl Engine {
    /// Starts the flow workers (they claim runs through the store, like run workers).
    pub fn start_flow_workers(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.config.runtime.flow_workers)
            .map(|i| {
                let (engine, sd) = (self.clone(), shutdown.clone());
                tokio::spawn(async move { engine.flow_worker_loop(i, sd).await })
            })
            .collect()
    }

    async fn flow_worker_loop(self: Arc<Self>, index: usize, mut shutdown: watch::Receiver<bool>) {
        let owner = format!("{}/f{index}", self.process_id);
        let lease = self.config.runtime.lease;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let notified = self.flow_wake.notified();
            let now = self.now();
            match self.store.claim_flow_run(&owner, now, now + lease.as_micros() as i64).await {
                Ok(Some(run)) => {
                    let id = run.id.clone();
                    if let Err(e) = self.execute_flow_run(run, &owner).await {
                        tracing::warn!(run_id = %id, error = %e, "flow run could not be finished now; it will be retried");
                    }
                }
                Ok(None) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "claiming a flow run failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Drives one claimed run until it is terminal (or its lease is lost).
    async fn execute_flow_run(self: &Arc<Self>, run: FlowRunRecord, owner: &str) -> Result<(), StoreError> {
        let end = |log: Vec<String>| FlowRunEnd { now: self.now(), log, ..Default::default() };
        if run.state == FlowRunState::Terminating || run.kill_requested {
            return self.terminate_flow_run(&run, owner).await;
        }
        if run.attempts > self.config.runtime.max_attempts {
            let msg = format!("the run was interrupted {} times (worker crash or restart) and was not retried again", run.attempts - 1);
            let e = FlowRunEnd { error: Some(msg.clone()), ..end(vec![format!("Run failed: {msg}")]) };
            return self.move_flow(&run, owner, FlowRunState::Failed, e).await;
        }
        let graph = match self.store.flow_version(&run.flow_id, run.flow_version).await? {
            Some(v) => validate(&v.document).map_err(|e| e.first().map(ToString::to_string).unwrap_or_default()),
            None => Err(format!("flow {} version {} no longer exists", run.flow_id, run.flow_version)),
        };
        let mut state = run.state;
        if state == FlowRunState::Queued {
            if let Err(e) = self.move_flow(&run, owner, FlowRunState::Started, end(vec!["Run started".into()])).await {
                return self.refused_or(e, &run.id, owner).await;
            }
            state = FlowRunState::Started;
        }
        let graph = match graph {
            Ok(g) => g,
            Err(msg) => {
                let e = FlowRunEnd { error: Some(msg.clone()), ..end(vec![format!("Run failed: {msg}")]) };
                return self.move_flow(&FlowRunRecord { state, ..run }, owner, FlowRunState::Failed, e).await;
            }
        };
        if state == FlowRunState::Started {
            if let Err(e) = self.move_flow(&FlowRunRecord { state, ..run.clone() }, owner, FlowRunState::Running, end(vec![])).await {
                return self.refused_or(e, &run.id, owner).await;
            }
        }
        let run = FlowRunRecord { state: FlowRunState::Running, ..run };
        let settled: HashMap<String, Settled> = self
            .store
            .flow_node_results(&run.id)
            .await?
            .into_iter()
            .map(|r| {
                let s = match r.output {
                    Value::Object(ports) if r.status == "done" => Settled::Done(ports),
                    _ => Settled::Skipped,
                };
                (r.node_id, s)
            })
            .collect();
        let ctx = RunCtx::new(self.clone(), run.clone(), Some(owner.to_string()));
        // Watcher: renews the lease and notices a kill (F3) sent to any replica.
        let watcher = {
            let (ctx, owner, engine) = (ctx.clone(), owner.to_string(), self.clone());
            tokio::spawn(async move {
                let lease = engine.config.runtime.lease;
                let mut last_beat = tokio::time::Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if let Ok(Some(r)) = engine.store.flow_run_status(&ctx.run.id).await {
                        if r.kill_requested {
                            ctx.stop.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                    if last_beat.elapsed() >= lease / 3 {
                        last_beat = tokio::time::Instant::now();
                        let until = engine.now() + lease.as_micros() as i64;
                        if let Ok(false) = engine.store.heartbeat_flow_run(&ctx.run.id, &owner, until).await {
                            ctx.stop.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            })
        };
        let inputs = match &run.inputs {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        let inputs = bind_defaults(&graph, inputs);
        let result = schedule(&ctx, &graph, &inputs, settled, "", Sink::Durable { owner }).await;
        watcher.abort();
        let stopped = ctx.stopped();
        drop(ctx);
        match result {
            Ok((outputs, _)) => {
                let e = FlowRunEnd { outputs: Some(Value::Object(outputs)), ..end(vec!["Run finished".into()]) };
                match self.move_flow(&run, owner, FlowRunState::Done, e).await {
                    Err(StoreError::Refused { .. }) => self.after_refusal(&run.id, owner).await,
                    other => other,
                }
            }
            Err(_) if stopped => self.after_refusal(&run.id, owner).await,
            Err(msg) => {
                let e = FlowRunEnd { error: Some(msg.clone()), ..end(vec![format!("Run failed: {msg}")]) };
                match self.move_flow(&run, owner, FlowRunState::Failed, e).await {
                    Err(StoreError::Refused { .. }) => self.after_refusal(&run.id, owner).await,
                    other => other,
                }
            }
        }
    }

    /// A refused transition means the run moved (a kill); other errors go up.
    async fn refused_or(self: &Arc<Self>, e: StoreError, run_id: &str, owner: &str) -> Result<(), StoreError> {
        match e {
            StoreError::Refused { .. } => self.after_refusal(run_id, owner).await,
            other => Err(other),
        }
    }

    /// The run moved under us: a kill (finish terminating it) or a lost lease (leave it).
    async fn after_refusal(self: &Arc<Self>, run_id: &str, owner: &str) -> Result<(), StoreError> {
        match self.store.flow_run(run_id).await? {
            Some(r) if r.state == FlowRunState::Terminating => self.terminate_flow_run(&r, owner).await,
            _ => Ok(()),
        }
    }

    async fn move_flow(&self, run: &FlowRunRecord, owner: &str, to: FlowRunState, end: FlowRunEnd) -> Result<(), StoreError> {
        if !can_move(run.state, to) {
            return Err(StoreError::Refused { expected: run.state.as_str(), actual: format!("no transition to {}", to.as_str()) });
        }
        self.store.move_flow_run(&run.id, Some(owner), run.state, to, end).await
    }

    /// TERMINATING → TERMINATED, after cancelling the run's hidden agent sessions.
    async fn terminate_flow_run(self: &Arc<Self>, run: &FlowRunRecord, owner: &str) -> Result<(), StoreError> {
        let mut run = run.clone();
        if run.state != FlowRunState::Terminating {
            // A kill requested while the run was being claimed.
            match self.store.request_flow_kill(&run.id).await? {
                Some(r) => run = r,
                None => return Ok(()),
            }
            if run.state != FlowRunState::Terminating {
                return Ok(());
            }
        }
        let ctx = RunCtx::new(self.clone(), run.clone(), None);
        if let Ok(caller) = ctx.caller().await {
            if let Ok(Some(v)) = self.store.flow_version(&run.flow_id, run.flow_version).await {
                if let Ok(g) = validate(&v.document) {
                    for n in g.nodes.iter().filter(|n| n.kind.name() == "agent") {
                        let sid = hidden_session_id(&run.id, &n.id);
                        if matches!(self.store.session(&sid).await, Ok(Some(s)) if s.state.is_active()) {
                            let _ = self.cancel_session(&caller, &sid).await;
                        }
                    }
                }
            }
        }
        let end = FlowRunEnd { now: self.now(), log: vec!["Run terminated".into()], ..Default::default() };
        self.move_flow(&run, owner, FlowRunState::Terminated, end).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_table() {
        use FlowRunState::*;
        assert!(can_move(Queued, Started) && can_move(Running, Done) && can_move(Running, Terminating) && can_move(Terminating, Terminated));
        assert!(!can_move(Done, Running) && !can_move(Terminated, Terminating) && !can_move(Queued, Done) && !can_move(Failed, Terminating));
    }
}
