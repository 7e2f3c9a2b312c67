//! The legacy interactions API (API.md §8.1, seed 003): `start_agent`, `agent_status`.
//! Errors are flat strings, exactly as documented.

use serde_json::{json, Map, Value};
use store::{MessageRecord, SessionRecord};
use wire::legacy::{AgentStatusResponse, LegacyMessage, LegacyState, StartAgentResponse};
use wire::sessions::{Part, Role};
use wire::ApiError;

use crate::runtime::parts::text_of;
use crate::sessions::state::SessionState;
use crate::sessions::{TurnRefused, TurnTarget};
use crate::{db, Caller, Engine, KeyInfo, KeyKind, Scope};

pub const MISSING_CREDENTIAL: &str = "Authorization header with Bearer token or api_key query parameter is required";

/// What the auth layer found for a legacy request.
pub enum LegacyAuth {
    Missing,
    Invalid,
    Key(KeyInfo),
}

fn flat(status: u16, s: &str) -> ApiError {
    ApiError::flat(status, s)
}

fn non_empty_str(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// Legacy message form (§8.1.2): `content` only on user messages.
pub fn legacy_message(m: &MessageRecord) -> LegacyMessage {
    let user = m.role == "user";
    LegacyMessage {
        id: m.id.clone(),
        role: if user { Role::User } else { Role::Assistant },
        timestamp: wire::time::legacy_naive(m.created_at),
        parts: Part::list_from_stored(&m.parts),
        content: user.then(|| m.content.clone().unwrap_or_default()),
    }
}

impl Engine {
    /// Acting user and scope for legacy calls. `deny` is the endpoint's 403 string.
    pub(crate) async fn legacy_caller(&self, key: &KeyInfo, user_id: Option<&str>, project_id: Option<&str>, deny: &str) -> Result<Caller, ApiError> {
        let (acting, scope) = match &key.kind {
            KeyKind::Personal { user_id: owner } => {
                if user_id.is_some_and(|u| u != owner) {
                    return Err(flat(403, deny));
                }
                (owner.clone(), Scope::Unscoped)
            }
            KeyKind::Team { team_id } => {
                if project_id.is_some_and(|p| p != team_id) {
                    return Err(flat(403, deny));
                }
                let acting = match user_id {
                    Some(u) => u.to_string(),
                    None => key.created_by.clone().ok_or_else(|| flat(403, deny))?,
                };
                if self.store.membership(team_id, &acting).await.map_err(db)?.is_none() {
                    return Err(flat(403, deny));
                }
                (acting, Scope::Team(team_id.clone()))
            }
        };
        let user = self.store.user(&acting).await.map_err(db)?.ok_or_else(|| flat(403, deny))?;
        let memberships: Vec<(String, String)> = self.store.teams_of_user(&acting).await.map_err(db)?.into_iter().map(|(t, r)| (t.id, r)).collect();
        if let (KeyKind::Personal { .. }, Some(p)) = (&key.kind, project_id) {
            if !memberships.iter().any(|(t, _)| t == p) {
                return Err(flat(403, deny));
            }
        }
        store::audit::set_user(&user.id);
        Ok(Caller { key: key.clone(), user, scope, memberships })
    }

    /// L1 `POST /start_agent`.
    pub async fn start_agent(&self, auth: LegacyAuth, body: Value) -> Result<StartAgentResponse, ApiError> {
        let m = match body {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let gummie_id = non_empty_str(&m, "gummie_id").ok_or_else(|| flat(400, "gummie_id is required"))?;
        let message =
            m.get("message").and_then(Value::as_str).filter(|s| !s.trim().is_empty()).map(str::to_string).ok_or_else(|| flat(400, "message is required"))?;
        let user_id = non_empty_str(&m, "user_id");
        let project_id = non_empty_str(&m, "project_id");
        if user_id.is_none() && project_id.is_none() {
            return Err(flat(400, "project_id or user_id is required"));
        }
        let key = match auth {
            LegacyAuth::Missing => return Err(flat(401, MISSING_CREDENTIAL)),
            LegacyAuth::Invalid => return Err(flat(403, "Unauthorized")),
            LegacyAuth::Key(k) => k,
        };
        let caller = self.legacy_caller(&key, user_id.as_deref(), project_id.as_deref(), "Unauthorized").await?;
        // Checked in the documented order: access errors, then absence, then conflicts.
        let agent = self.visible_agent(&caller, &gummie_id).await;
        let session = match non_empty_str(&m, "interaction_id") {
            None => None,
            Some(iid) => match self.store.session(&iid).await.map_err(db)? {
                // The session's rights decide (§2.5): continuing needs the use right.
                Some(s) => {
                    let rights = self.session_rights(&caller, &s).await?;
                    if rights.visible && !rights.edit {
                        return Err(flat(403, "unauthorized_interaction_access"));
                    }
                    Some(rights.visible.then_some(s))
                }
                None => Some(None),
            },
        };
        let agent = agent.map_err(|_| flat(404, "gummie_not_found"))?;
        let existing = match session {
            None => None,
            Some(None) => return Err(flat(404, "interaction_not_found")),
            Some(Some(s)) => {
                if s.agent_id != agent.id {
                    return Err(flat(400, "interaction_gummie_mismatch"));
                }
                if !s.state.accepts_legacy_continuation() {
                    return Err(flat(409, "interaction_not_in_terminal_state"));
                }
                Some(s)
            }
        };
        let target = match &existing {
            Some(s) => TurnTarget::Existing(s),
            None => TurnTarget::New { id: wire::ids::new_id("sess"), kind: "api", name: Some(agent.config.name.clone()), metadata: json!({}) },
        };
        match self.accept_turn(&caller.user, &agent, target, crate::sessions::TurnInput { text: message, ..Default::default() }).await {
            Ok(a) => Ok(StartAgentResponse { interaction_id: a.session_id, status: "processing".into() }),
            Err(TurnRefused::NotAccepting(_)) => Err(flat(409, "interaction_not_in_terminal_state")),
            Err(TurnRefused::ConcurrencyLimit) => Err(flat(429, "agent_concurrency_limit").retry_after(5)),
            Err(TurnRefused::SessionExists) => Err(ApiError::flat(500, "internal_error")),
            Err(TurnRefused::Internal(e)) => Err(ApiError { code: "internal_error".into(), ..e }),
        }
    }

    /// L2 `GET /agent_status/{interaction_id}`.
    pub async fn agent_status(
        &self,
        key: &KeyInfo,
        interaction_id: &str,
        user_id: Option<&str>,
        project_id: Option<&str>,
    ) -> Result<AgentStatusResponse, ApiError> {
        let caller = self.legacy_caller(key, user_id, project_id, "unauthorized").await?;
        let s: SessionRecord = self.store.session(interaction_id).await.map_err(db)?.ok_or_else(|| flat(404, "interaction_not_found"))?;
        let rights = self.session_rights(&caller, &s).await?;
        if !rights.visible {
            return Err(flat(404, "interaction_not_found"));
        }
        if !rights.read {
            return Err(flat(403, "unauthorized"));
        }
        let state = s.state;
        let legacy_state = match state.legacy() {
            "COMPLETED" => LegacyState::Completed,
            "FAILED" => LegacyState::Failed,
            _ => LegacyState::AsyncProcessing,
        };
        let mut out = AgentStatusResponse {
            interaction_id: s.id.clone(),
            gummie_id: s.agent_id.clone(),
            state: legacy_state,
            created_ts: wire::time::legacy(s.created_at),
            messages: None,
            response: None,
            error_message: None,
            error: None,
        };
        match legacy_state {
            LegacyState::Completed => {
                let messages = self.store.messages(&s.id).await.map_err(db)?;
                let response = messages.iter().rev().find(|m| m.role == "assistant").map(|m| text_of(&m.parts)).unwrap_or_default();
                out.messages = Some(messages.iter().map(legacy_message).collect());
                out.response = Some(response);
            }
            LegacyState::Failed => {
                let msg = if state == SessionState::Cancelled {
                    "CancelledError: cancelled by user".to_string()
                } else {
                    let run = match &s.current_run_id {
                        Some(r) => self.store.run(r).await.map_err(db)?,
                        None => None,
                    };
                    run.and_then(|r| r.error_message).unwrap_or_else(|| "RuntimeError: Agent encountered an error while processing".into())
                };
                let msg = msg.chars().take(4096).collect::<String>();
                out.error = Some(wire::sessions::RunFailure::parse(&msg));
                out.error_message = Some(msg);
            }
            LegacyState::AsyncProcessing => {}
        }
        Ok(out)
    }
}
