//! The node library: what each node kind does with its input values.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Map, Value};
use wire::sessions::SessionState;

use super::document::{render, value_text, CondOp, Graph, Kind, LoopBody, Node, PathStep, SubflowTarget};
use super::runner::{run_inline, RunCtx};

/// What a node produced: its output ports, its cost and log lines.
#[derive(Debug, Default)]
pub struct NodeOutput {
    pub ports: Map<String, Value>,
    pub credit_cost: f64,
    pub log: Vec<String>,
}

impl NodeOutput {
    fn one(port: &str, v: Value) -> Self {
        let mut ports = Map::new();
        ports.insert(port.into(), v);
        NodeOutput { ports, ..Default::default() }
    }
}

/// Runs one node. `vars` are its input ports' values; `scope` makes ids of what it
/// creates (hidden sessions) unique and stable across restarts.
pub async fn run_node(ctx: &Arc<RunCtx>, node: &Node, mut vars: HashMap<String, Value>, scope: &str, top: bool) -> Result<NodeOutput, String> {
    let engine = &ctx.engine;
    match &node.kind {
        Kind::Template { template } => Ok(NodeOutput::one("text", Value::String(render(template, &vars)))),
        Kind::Llm { model, prompt, system, schema, temperature, max_tokens } => {
            let mut sys = system.as_ref().map(|s| render(s, &vars));
            if let Some(schema) = schema {
                let rule = format!("Reply with one JSON value that matches this JSON Schema, and nothing else (no prose, no code fences):\n{schema}");
                sys = Some(match sys {
                    Some(s) => format!("{s}\n\n{rule}"),
                    None => rule,
                });
            }
            let (text, cost) = call_model(ctx, model, sys, render(prompt, &vars), *temperature, *max_tokens).await?;
            let mut out = NodeOutput::one("text", Value::String(text.clone()));
            out.credit_cost = cost;
            if let Some(schema) = schema {
                let v = parse_json_reply(&text).ok_or_else(|| format!("the model's reply is not JSON: {}", clip(&text)))?;
                check_required(schema, &v)?;
                out.ports.insert("json".into(), v);
            }
            Ok(out)
        }
        Kind::Agent { agent_id, prompt } => run_agent(ctx, agent_id, render(prompt, &vars), scope).await,
        Kind::Extract { model, fields } => {
            let text = vars.get("text").map(value_text).unwrap_or_default();
            let list: Vec<String> = fields
                .iter()
                .map(|(n, t, d)| match d {
                    Some(d) => format!("- {n} ({t}): {d}"),
                    None => format!("- {n} ({t})"),
                })
                .collect();
            let sys = format!(
                "Extract these fields from the user's text. Reply with one JSON object with exactly these keys (null when absent), nothing else:\n{}",
                list.join("\n")
            );
            let (reply, cost) = call_model(ctx, model, Some(sys), text, Some(0.0), None).await?;
            let v = parse_json_reply(&reply).filter(Value::is_object).ok_or_else(|| format!("the model's reply is not a JSON object: {}", clip(&reply)))?;
            let mut obj = Map::new();
            for (n, _, _) in fields {
                obj.insert(n.clone(), v.get(n).cloned().unwrap_or(Value::Null));
            }
            let mut out = NodeOutput::one("fields", Value::Object(obj));
            out.credit_cost = cost;
            Ok(out)
        }
        Kind::Categorize { model, categories } => {
            let text = vars.get("text").map(value_text).unwrap_or_default();
            let sys = format!("Classify the user's text into exactly one of these categories; reply with the category only:\n{}", categories.join("\n"));
            let (reply, cost) = call_model(ctx, model, Some(sys), text, Some(0.0), None).await?;
            let r = reply.trim().trim_matches(|c: char| c == '"' || c == '.').to_lowercase();
            let pick = categories
                .iter()
                .find(|c| c.to_lowercase() == r)
                .or_else(|| categories.iter().find(|c| r.contains(&c.to_lowercase())))
                .ok_or_else(|| format!("the model's reply names none of the categories: {}", clip(&reply)))?;
            let mut out = NodeOutput::one("category", Value::String(pick.clone()));
            out.credit_cost = cost;
            Ok(out)
        }
        Kind::HttpRequest { method, url, headers, body } => {
            let http = engine.http.get().ok_or("outbound HTTP is not configured on this server")?;
            let headers: Vec<(String, String)> = headers.iter().map(|(k, v)| (k.clone(), render(v, &vars))).collect();
            let r = http.request(method, &render(url, &vars), &headers, body.as_ref().map(|b| render(b, &vars))).await.map_err(|e| e.message)?;
            let text = r.get("text").and_then(Value::as_str).unwrap_or("").to_string();
            let mut out = NodeOutput::one("body", Value::String(text.clone()));
            out.ports.insert("status".into(), r.get("status").cloned().unwrap_or(Value::Null));
            out.ports.insert("json".into(), serde_json::from_str(&text).unwrap_or(Value::Null));
            Ok(out)
        }
        Kind::WebFetch { url } => {
            let http = engine.http.get().ok_or("outbound HTTP is not configured on this server")?;
            let r = http.fetch(tools::WebFetchArgs { url: render(url, &vars), max_bytes: None }).await.map_err(|e| e.message)?;
            let mut out = NodeOutput::one("text", r.get("text").cloned().unwrap_or(Value::String(String::new())));
            out.ports.insert("status".into(), r.get("status").cloned().unwrap_or(Value::Null));
            Ok(out)
        }
        Kind::JsonPath { path } => {
            let mut v = vars.get("value").cloned().unwrap_or(Value::Null);
            // A JSON document arriving as text is read as JSON.
            if let Value::String(s) = &v {
                if let Ok(parsed) = serde_json::from_str::<Value>(s) {
                    v = parsed;
                }
            }
            let mut cur = &v;
            for step in path {
                let next = match step {
                    PathStep::Key(k) => cur.get(k.as_str()),
                    PathStep::Index(i) => cur.get(*i),
                };
                match next {
                    Some(n) => cur = n,
                    None => return Ok(NodeOutput::one("value", Value::Null)),
                }
            }
            Ok(NodeOutput::one("value", cur.clone()))
        }
        Kind::Split { separator } => {
            let text = vars.get("text").map(value_text).unwrap_or_default();
            let items: Vec<Value> = if text.is_empty() { vec![] } else { text.split(separator.as_str()).map(|s| Value::String(s.to_string())).collect() };
            Ok(NodeOutput::one("items", Value::Array(items)))
        }
        Kind::Join { separator } => {
            let items = list(&mut vars, "items")?;
            Ok(NodeOutput::one("text", Value::String(items.iter().map(value_text).collect::<Vec<_>>().join(separator))))
        }
        Kind::Filter { contains, equals, not_empty } => {
            let items = list(&mut vars, "items")?;
            let keep = |v: &Value| {
                contains.as_ref().is_none_or(|c| value_text(v).contains(c.as_str())) && equals.as_ref().is_none_or(|e| e == v) && (!*not_empty || !is_empty(v))
            };
            Ok(NodeOutput::one("items", Value::Array(items.into_iter().filter(keep).collect())))
        }
        Kind::Dedupe => {
            let items = list(&mut vars, "items")?;
            let mut seen = std::collections::HashSet::new();
            Ok(NodeOutput::one("items", Value::Array(items.into_iter().filter(|v| seen.insert(v.to_string())).collect())))
        }
        Kind::Condition { op, value } => {
            let v = vars.get("value").cloned().unwrap_or(Value::Null);
            let taken = condition(*op, &v, value);
            let port = if taken { "true" } else { "false" };
            let mut out = NodeOutput::one(port, v);
            out.log.push(format!("Node {} took the {port} branch", node.id));
            Ok(out)
        }
        Kind::Loop { body, item_input, concurrency, over_file } => {
            let graph = match body.as_ref() {
                LoopBody::Inline(g) => Arc::new(g.clone()),
                LoopBody::Saved(id) => Arc::new(ctx.saved_graph(id).await?),
            };
            if !graph.inputs.iter().any(|d| &d.name == item_input) {
                return Err(format!("the loop's flow has no input {item_input:?}"));
            }
            if *over_file {
                let name = vars.get("file_name").map(value_text).unwrap_or_default();
                return super::file_loop::run(ctx, node, graph, item_input, *concurrency, &name, scope, top).await;
            }
            let items = list(&mut vars, "items")?;
            let n = items.len();
            // A top-level loop commits each item as it finishes; a resumed run skips those.
            let durable = if top { ctx.owner.clone() } else { None };
            let mut results = vec![Value::Null; n];
            let mut done = vec![false; n];
            let mut cost = 0.0;
            if durable.is_some() {
                let mut after = -1;
                loop {
                    let page = ctx.engine.store.flow_loop_items(&ctx.run.id, &node.id, after, 1000).await.map_err(|e| e.to_string())?;
                    let Some(last) = page.last().map(|(i, _, _)| *i) else { break };
                    after = last;
                    for (i, v, c) in page {
                        if let Some(slot) = usize::try_from(i).ok().filter(|i| *i < n) {
                            results[slot] = v;
                            done[slot] = true;
                            cost += c;
                        }
                    }
                }
            }
            let resumed = done.iter().filter(|d| **d).count();
            let todo: Vec<(usize, Value)> = items.into_iter().enumerate().filter(|(i, _)| !done[*i]).collect();
            let mut stream = futures::stream::iter(todo)
                .map(|(i, item)| {
                    let (graph, ctx, durable) = (graph.clone(), ctx.clone(), durable.clone());
                    let inputs: Map<String, Value> = [(item_input.clone(), item)].into_iter().collect();
                    let scope = format!("{scope}-{i}");
                    let node_id = node.id.clone();
                    async move {
                        let (outputs, c) = run_inline(&ctx, &graph, inputs, &scope).await.map_err(|e| format!("item {i}: {e}"))?;
                        let v = single_or_object(&graph, outputs);
                        if let Some(owner) = &durable {
                            let stored =
                                ctx.engine.store.commit_flow_loop_item(owner, &ctx.run.id, &node_id, i as i64, &v, c).await.map_err(|e| e.to_string())?;
                            if !stored {
                                return Err("stopped".to_string());
                            }
                        }
                        Ok::<_, String>((i, v, c))
                    }
                })
                .buffer_unordered(*concurrency);
            while let Some(r) = stream.next().await {
                let (i, v, c) = r?;
                cost += c;
                results[i] = v;
            }
            let mut out = NodeOutput::one("results", Value::Array(results));
            out.credit_cost = cost;
            out.log.push(if resumed > 0 {
                format!("Node {} ran {n} items ({resumed} committed before a restart)", node.id)
            } else {
                format!("Node {} ran {n} items", node.id)
            });
            Ok(out)
        }
        Kind::Subflow { target } => {
            let graph = match target {
                SubflowTarget::Inline(g) => g.as_ref().clone(),
                SubflowTarget::Saved(id) => ctx.saved_graph(id).await?,
            };
            let inputs: Map<String, Value> = vars.into_iter().collect();
            let (outputs, cost) = Box::pin(run_inline(ctx, &graph, inputs, scope)).await?;
            let mut out = NodeOutput::one("outputs", Value::Object(outputs));
            out.credit_cost = cost;
            Ok(out)
        }
        Kind::WriteFile { file_name } => {
            let content = vars.get("content").map(value_text).unwrap_or_default();
            let name = ctx.write_run_file(&render(file_name, &vars), content.into_bytes()).await?;
            Ok(NodeOutput::one("file_name", Value::String(name)))
        }
    }
}

pub(super) fn single_or_object(g: &Graph, mut outputs: Map<String, Value>) -> Value {
    if g.outputs.len() == 1 {
        outputs.remove(&g.outputs[0].0).unwrap_or(Value::Null)
    } else {
        Value::Object(outputs)
    }
}

/// Takes a list input out of the node's inputs (no copy of a long list).
fn list(vars: &mut HashMap<String, Value>, port: &str) -> Result<Vec<Value>, String> {
    match vars.remove(port) {
        Some(Value::Array(a)) => Ok(a),
        Some(Value::Null) | None => Ok(vec![]),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Array(a)) => Ok(a),
            _ => Err(format!("input {port:?} is a string, not a list")),
        },
        Some(other) => Err(format!("input {port:?} is not a list: {}", clip(&other.to_string()))),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(_) => false,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub fn condition(op: CondOp, v: &Value, arg: &Value) -> bool {
    match op {
        CondOp::Equals => v == arg || value_text(v) == value_text(arg),
        CondOp::NotEquals => !(v == arg || value_text(v) == value_text(arg)),
        CondOp::Contains => match v {
            Value::Array(a) => a.contains(arg) || a.iter().any(|x| value_text(x) == value_text(arg)),
            other => value_text(other).contains(&value_text(arg)),
        },
        CondOp::NotEmpty => !is_empty(v),
        CondOp::Empty => is_empty(v),
        CondOp::Gt => matches!((number(v), number(arg)), (Some(a), Some(b)) if a > b),
        CondOp::Lt => matches!((number(v), number(arg)), (Some(a), Some(b)) if a < b),
    }
}

fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(200).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// The JSON in a model's reply (bare, or inside a code fence).
fn parse_json_reply(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    let inner = t.strip_prefix("```json").or_else(|| t.strip_prefix("```")).and_then(|x| x.strip_suffix("```")).map(str::trim)?;
    serde_json::from_str(inner).ok()
}

/// The schema's top-level `required` keys are present.
fn check_required(schema: &Value, v: &Value) -> Result<(), String> {
    if schema.get("type").and_then(Value::as_str) == Some("object") && !v.is_object() {
        return Err("the model's JSON is not an object, as the schema asks".into());
    }
    for k in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if v.get(k).is_none() {
            return Err(format!("the model's JSON lacks the required key {k:?}"));
        }
    }
    Ok(())
}

/// One model call: (text, credits).
async fn call_model(
    ctx: &RunCtx,
    model_name: &str,
    system: Option<String>,
    user: String,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
) -> Result<(String, f64), String> {
    let engine = &ctx.engine;
    let name = engine.resolve_model_name(model_name);
    let (model, native) = engine.providers.resolve(&name).map_err(|e| e.to_string())?;
    let mut messages = Vec::new();
    if let Some(s) = system {
        messages.push(llm::ChatMessage::system(s));
    }
    messages.push(llm::ChatMessage::user(user));
    let req = llm::ChatRequest { model: native.clone(), messages, temperature, max_tokens, ..Default::default() };
    let stream = model.stream(req).await.map_err(|e| e.to_string())?;
    let resp = llm::collect(stream).await.map_err(|e| e.to_string())?;
    let cost = resp.usage.as_ref().map(|u| engine.credit_cost(&name, &native, u)).unwrap_or(0.0);
    // Every model call is in the credit ledger, committed or not (its credits were spent).
    if cost > 0.0 {
        let r = &ctx.run;
        engine
            .record_credits(vec![store::LedgerEntry {
                id: wire::ids::new_id("cl"),
                organization_id: r.organization_id.clone(),
                user_id: Some(r.user_id.clone()),
                team_id: r.team_id.clone(),
                created_at: engine.now(),
                category: "PIPELINE_RUN".into(),
                kind: "model_call".into(),
                name: name.clone(),
                amount: cost,
                correlation_id: Some(r.id.clone()),
                session_id: None,
                agent_id: None,
            }])
            .await;
    }
    Ok((resp.text, cost))
}

/// The hidden session of an agent node: created once (its id is derived from the run and
/// the node, so a resumed run finds it instead of starting the agent again), then
/// awaited to a final state.
async fn run_agent(ctx: &Arc<RunCtx>, agent_id: &str, prompt: String, scope: &str) -> Result<NodeOutput, String> {
    let engine = &ctx.engine;
    let caller = ctx.caller().await?;
    let session_id = hidden_session_id(&ctx.run.id, scope);
    let mut log = Vec::new();
    if engine.store.session(&session_id).await.map_err(|e| e.to_string())?.is_none() {
        let req = wire::sessions::SessionCreateRequest {
            input: Some(wire::sessions::MessageContent::Text(prompt)),
            session_id: Some(session_id.clone()),
            ..Default::default()
        };
        match engine.create_session(&caller, agent_id, req, "flow", false).await {
            Ok(_) => log.push(format!("Agent {agent_id} started in session {session_id}")),
            // Created by an earlier attempt of this run between the check and now.
            Err(e) if e.code == "session_already_exists" => {}
            Err(e) => return Err(format!("agent {agent_id}: {}", e.message)),
        }
    }
    let mut waited_for_approval = false;
    loop {
        let s = engine.store.session(&session_id).await.map_err(|e| e.to_string())?.ok_or("the agent's session disappeared")?;
        match s.state {
            SessionState::Completed | SessionState::Idle => {
                let msgs = engine.store.messages(&session_id).await.map_err(|e| e.to_string())?;
                let text = msgs.iter().rev().find(|m| m.role == "assistant").and_then(|m| m.content.clone()).unwrap_or_default();
                let cost = s.usage.get("credit_cost").and_then(Value::as_f64).unwrap_or(0.0);
                let mut out = NodeOutput::one("text", Value::String(text));
                out.credit_cost = cost;
                out.log = log;
                return Ok(out);
            }
            SessionState::Failed => {
                let msgs = engine.store.messages(&session_id).await.map_err(|e| e.to_string())?;
                let err = msgs
                    .iter()
                    .rev()
                    .find(|m| m.role == "assistant")
                    .and_then(|m| m.parts.as_array().and_then(|p| p.iter().find_map(|x| x.get("error").map(value_text))))
                    .unwrap_or_else(|| "the agent's run failed".into());
                return Err(format!("agent session {session_id} failed: {err}"));
            }
            SessionState::Cancelled => return Err(format!("agent session {session_id} was cancelled")),
            SessionState::ApprovalRequired if !waited_for_approval => {
                waited_for_approval = true;
                let _ = engine.store.append_flow_log(&ctx.run.id, vec![format!("Agent session {session_id} waits for an approval (S11)")]).await;
            }
            _ => {}
        }
        if ctx.stopped() {
            return Err("stopped".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `flow-<run>-<node path>`, within the caller-id alphabet and length.
pub fn hidden_session_id(run_id: &str, scope: &str) -> String {
    let raw = format!("flow-{run_id}-{scope}");
    if raw.len() <= 128 {
        return raw;
    }
    use sha2::Digest;
    let h = sha2::Sha256::digest(raw.as_bytes());
    format!("flow-{run_id}-{}", h.iter().take(12).map(|b| format!("{b:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions() {
        assert!(condition(CondOp::Equals, &json!("a"), &json!("a")));
        assert!(condition(CondOp::Gt, &json!("5"), &json!(3)));
        assert!(!condition(CondOp::NotEmpty, &json!(""), &Value::Null));
        assert!(condition(CondOp::Contains, &json!(["x", "y"]), &json!("y")));
    }

    #[test]
    fn json_replies() {
        assert_eq!(parse_json_reply("```json\n{\"a\": 1}\n```"), Some(json!({"a": 1})));
        assert_eq!(parse_json_reply("nope"), None);
    }
}
