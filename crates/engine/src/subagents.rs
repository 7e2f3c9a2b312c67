//! Subagents (G18–G19): an agent attached to another becomes one of its tools. A call
//! starts the child in its own session (type `subagent`, not part of the parent's
//! transcript) as the user whose message started the parent's run, with that user's
//! rights, and returns the child's answer. Limits: a chain of delegations is at most
//! [`MAX_DEPTH`] deep, a child that asks for an approval ends the call (the model hears
//! which session waits), and a child running longer than the run timeout is cancelled.
//! The child's credits are recorded on its own session, against the same user.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use store::{AgentRecord, SessionState};
use tools::{Tool, ToolContext, ToolError};
use wire::agents::AgentSubagentsResponse;
use wire::{ApiError, ErrorCode};

use crate::auth::{Caller, KeyInfo, KeyKind, Scope};
use crate::Engine;

/// Parent → child → grandchild: at most this many delegations in one chain.
pub const MAX_DEPTH: i64 = 3;
/// Where a child session records its place in the chain (inside `metadata`).
const META_KEY: &str = "openloop_subagent";

fn allowed_ids(agent: &AgentRecord) -> Vec<String> {
    agent
        .config
        .metadata
        .get("subagent")
        .and_then(|s| s.get("allowed_gummie_ids"))
        .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
        .unwrap_or_default()
}

impl Engine {
    async fn set_subagents(&self, caller: &Caller, agent_id: &str, sub_id: &str, attach: bool) -> Result<AgentSubagentsResponse, ApiError> {
        let cur = self.visible_agent(caller, agent_id).await?;
        if !self.can_update_agent(caller, &cur) {
            return Err(crate::agents::permission_denied("update"));
        }
        let mut ids = allowed_ids(&cur);
        if attach {
            if sub_id == cur.id {
                return Err(ApiError::new(ErrorCode::InvalidRequest, "An agent cannot be its own subagent.").param("subagent_id"));
            }
            let sub = self.visible_agent(caller, sub_id).await.map_err(|e| e.param("subagent_id"))?;
            if sub.team_id != cur.team_id || (cur.team_id.is_none() && sub.owner_user_id != cur.owner_user_id) {
                return Err(ApiError::new(ErrorCode::InvalidRequest, "A subagent must live in the same workspace as the agent.").param("subagent_id"));
            }
        }
        let present = ids.iter().any(|i| i == sub_id);
        if attach == present {
            return Ok(AgentSubagentsResponse { agent_id: cur.id, subagent_ids: ids, changed: false });
        }
        if attach {
            ids.push(sub_id.to_string());
        } else {
            ids.retain(|i| i != sub_id);
        }
        let mut cfg = cur.config.clone();
        let setting = cfg.metadata.entry("subagent").or_insert_with(|| json!({}));
        if !setting.is_object() {
            *setting = json!({});
        }
        setting["allowed_gummie_ids"] = json!(ids);
        self.commit_agent_change(caller, &cur, None, cfg, cur.team_id.clone(), cur.is_active).await?;
        Ok(AgentSubagentsResponse { agent_id: cur.id, subagent_ids: ids, changed: true })
    }

    /// G18 (idempotent).
    pub async fn attach_subagent(&self, caller: &Caller, agent_id: &str, sub_id: &str) -> Result<AgentSubagentsResponse, ApiError> {
        self.set_subagents(caller, agent_id, sub_id, true).await
    }

    /// G19 (idempotent).
    pub async fn detach_subagent(&self, caller: &Caller, agent_id: &str, sub_id: &str) -> Result<AgentSubagentsResponse, ApiError> {
        self.set_subagents(caller, agent_id, sub_id, false).await
    }

    /// One tool per attached agent that still exists and is active.
    pub async fn subagent_tools_for(self: &Arc<Self>, agent: &AgentRecord, taken: &[String]) -> Vec<Arc<dyn Tool>> {
        let mut names: Vec<String> = taken.to_vec();
        let mut out: Vec<Arc<dyn Tool>> = Vec::new();
        for id in allowed_ids(agent) {
            let child = match self.store.agent(&id).await {
                Ok(Some(a)) if a.deleted_at.is_none() && a.is_active => a,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read a subagent");
                    continue;
                }
            };
            let name = crate::mcp_servers::tool::offered_name("subagent", &child.config.name, &names);
            names.push(name.clone());
            let what = child.config.description.clone().filter(|d| !d.trim().is_empty()).map(|d| format!(" ({d})")).unwrap_or_default();
            let description = format!(
                "Delegate a task to the agent \"{}\"{what}: it works on `input` in its own session and its final answer is returned.",
                child.config.name
            );
            out.push(Arc::new(SubagentTool { engine: self.clone(), parent: agent.clone(), child_id: child.id, name, description }));
        }
        out
    }

    /// The caller a child session runs as: the parent's session user, in the parent
    /// agent's workspace.
    async fn subagent_caller(&self, user_id: &str, parent: &AgentRecord) -> Result<Caller, String> {
        let user = self.store.user(user_id).await.map_err(|e| e.to_string())?.ok_or("the session's user no longer exists")?;
        let memberships: Vec<(String, String)> =
            self.store.teams_of_user(&user.id).await.map_err(|e| e.to_string())?.into_iter().map(|(t, r)| (t.id, r)).collect();
        let (kind, scope) = match &parent.team_id {
            Some(t) => (KeyKind::Team { team_id: t.clone() }, Scope::Team(t.clone())),
            None => (KeyKind::Personal { user_id: user.id.clone() }, Scope::Unscoped),
        };
        Ok(Caller { key: KeyInfo { id: format!("subagent:{}", parent.id), kind, created_by: None }, user, scope, memberships })
    }
}

struct SubagentTool {
    engine: Arc<Engine>,
    parent: AgentRecord,
    child_id: String,
    name: String,
    description: String,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SubagentArgs {
    /// The task or question for the subagent, with everything it needs to know.
    input: String,
}

/// Cancels the child if the parent's call is dropped (parent cancelled or stopped).
struct CancelOnDrop {
    engine: Arc<Engine>,
    caller: Caller,
    session_id: String,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (engine, caller, id) = (self.engine.clone(), self.caller.clone(), self.session_id.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = engine.cancel_session(&caller, &id).await;
            });
        }
    }
}

#[async_trait::async_trait]
impl Tool for SubagentTool {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        &self.description
    }
    fn parameters(&self) -> Value {
        tools::schema_of::<SubagentArgs>()
    }
    fn read_only(&self) -> bool {
        false
    }
    fn acts_as_session_user(&self) -> bool {
        true
    }
    async fn call(&self, args: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        let args: SubagentArgs = tools::parse_args(args)?;
        if args.input.trim().is_empty() {
            return Err(ToolError::new("invalid arguments: input: must not be empty"));
        }
        let engine = &self.engine;
        let parent_session = engine.store.session(&ctx.session_id).await.map_err(|e| ToolError::new(e.to_string()))?;
        let depth = parent_session
            .as_ref()
            .and_then(|s| s.metadata.get("client").and_then(|c| c.get(META_KEY)).and_then(|m| m.get("depth")).and_then(Value::as_i64))
            .unwrap_or(0)
            + 1;
        if depth > MAX_DEPTH {
            return Err(ToolError::new(format!("subagent depth limit reached ({MAX_DEPTH} delegations in one chain); answer without delegating")));
        }
        let caller = self.engine.subagent_caller(&ctx.user_id, &self.parent).await.map_err(ToolError::new)?;
        let session_id = format!("sub-{}-{}", ctx.run_id, wire::ids::random_base62(8));
        let meta = json!({META_KEY: {"parent_agent_id": self.parent.id, "parent_session_id": ctx.session_id, "parent_run_id": ctx.run_id, "depth": depth}});
        let req = wire::sessions::SessionCreateRequest {
            input: Some(wire::sessions::MessageContent::Text(args.input)),
            session_id: Some(session_id.clone()),
            metadata: serde_json::from_value(meta).ok(),
            ..Default::default()
        };
        engine
            .create_session(&caller, &self.child_id, req, "subagent", false)
            .await
            .map_err(|e| ToolError::new(format!("the subagent could not start: {}", e.message)))?;
        let mut guard = CancelOnDrop { engine: engine.clone(), caller, session_id: session_id.clone(), armed: true };
        let deadline = Instant::now() + engine.config.runtime.run_timeout;
        loop {
            let s = engine
                .store
                .session(&session_id)
                .await
                .map_err(|e| ToolError::new(e.to_string()))?
                .ok_or_else(|| ToolError::new("the subagent's session disappeared"))?;
            let answer = || async {
                let msgs = engine.store.messages(&session_id).await.unwrap_or_default();
                msgs.iter().rev().find(|m| m.role == "assistant").and_then(|m| m.content.clone()).unwrap_or_default()
            };
            match s.state {
                SessionState::Completed | SessionState::Idle => {
                    guard.armed = false;
                    let credits = s.usage.get("credit_cost").and_then(Value::as_f64).unwrap_or(0.0);
                    return Ok(json!({"session_id": session_id, "state": "completed", "answer": answer().await, "credit_cost": credits}));
                }
                SessionState::Failed => {
                    guard.armed = false;
                    return Err(ToolError::new(format!("the subagent's run failed (session {session_id})")));
                }
                SessionState::Cancelled => {
                    guard.armed = false;
                    return Err(ToolError::new(format!("the subagent's session {session_id} was cancelled")));
                }
                SessionState::ApprovalRequired => {
                    guard.armed = false;
                    return Ok(json!({"session_id": session_id, "state": "approval_required",
                        "answer": "The subagent is waiting for a tool approval in its own session; it continues once a user resolves it there."}));
                }
                _ => {}
            }
            if Instant::now() > deadline {
                return Err(ToolError::new(format!("the subagent did not finish within {:?}; it was cancelled", engine.config.runtime.run_timeout)));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
