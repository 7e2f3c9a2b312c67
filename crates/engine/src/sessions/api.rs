//! The v1 sessions API (§8.2): views, create, list, rename, send, cancel, the message
//! queue and approvals. Streaming readers use `stream::follow`.

use serde_json::{json, Map, Value};
use store::{QueuedMessageRecord, RunUpdate, SessionRecord, StepRecord};
use wire::events::{EventUsage, FinishReason, StreamEvent, StreamFrame};
use wire::sessions::{
    ApprovalAction, ApprovalOutcome, ApprovalResponse, ApprovalResult, Attachment, MessageContent, MessagePayload, Part, PendingApproval, QueueMessageRequest,
    QueuedMessage, Role, Session, SessionApprovalsResponse, SessionCreateRequest, SessionKind, SessionListResponse, SessionMessageRequest,
    SessionQueueResponse, SessionQueuedMessageResponse, SessionRenameRequest, SessionResponse, SessionUsage,
};
use wire::{ApiError, ErrorCode};

use super::state::{run_transition, transition, RunState, SessionEvent, SessionState};
use super::{Accepted, TurnInput, TurnRefused, TurnTarget};
use crate::input::Query;
use crate::pagination::PageRequest;
use crate::runtime::agent_loop::public_approval;
use crate::runtime::parts::text_of;
use crate::{db, Caller, Engine};

pub const MAX_QUEUE: i64 = 20;

pub fn session_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::SessionNotFound, format!("Session {id} was not found.")).param("session_id")
}

/// Message content (`input`, alias `message`; `input` wins): its text, `None` when
/// neither is sent; empty or whitespace-only is `400 invalid_input`.
pub fn content_text(input: Option<&MessageContent>, message: Option<&MessageContent>) -> Result<Option<String>, ApiError> {
    let (key, content) = match (input, message) {
        (Some(c), _) => ("input", c),
        (None, Some(c)) => ("message", c),
        (None, None) => return Ok(None),
    };
    let text = content.text();
    if text.trim().is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidInput, format!("{key} is empty.")).param(key));
    }
    Ok(Some(text))
}

fn require_content(input: Option<&MessageContent>, message: Option<&MessageContent>) -> Result<String, ApiError> {
    content_text(input, message)?.ok_or_else(|| ApiError::new(ErrorCode::InvalidInput, "input (or message) is required.").param("input"))
}

fn check_name(raw: &str) -> Result<String, ApiError> {
    let n = raw.trim();
    if n.is_empty() || n.chars().count() > 256 {
        return Err(ApiError::new(ErrorCode::InvalidName, "name must be 1 to 256 characters after trimming.").param("name"));
    }
    Ok(n.to_string())
}

fn refused(e: TurnRefused, engine: &Engine) -> ApiError {
    match e {
        TurnRefused::NotAccepting(st) => ApiError::new(
            ErrorCode::InteractionNotInTerminalState,
            format!("The session is {st}; wait for it to finish, queue the message (delivery: \"queued\") or cancel the run."),
        )
        .detail("state", st.as_str()),
        TurnRefused::ConcurrencyLimit => engine.concurrency_error(),
        TurnRefused::SessionExists => ApiError::new(ErrorCode::SessionAlreadyExists, "A session with this session_id already exists.").param("session_id"),
        TurnRefused::Internal(e) => e,
    }
}

fn queued_message(q: &QueuedMessageRecord, position: usize) -> QueuedMessage {
    QueuedMessage {
        id: q.id.clone(),
        input: q.input.clone(),
        state: "queued".into(),
        position: position as i64,
        created_at: wire::time::v1(q.created_at),
        updated_at: wire::time::v1(q.updated_at),
    }
}

pub fn state_of(s: &SessionRecord) -> SessionState {
    s.state
}

fn kind_of(s: &SessionRecord) -> SessionKind {
    match s.kind.as_str() {
        "tool" => SessionKind::Tool,
        "flow" => SessionKind::Flow,
        "subagent" => SessionKind::Subagent,
        _ => SessionKind::Api,
    }
}

fn str_field(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

/// The name the API shows: the given name, else the agent's name when it was created.
fn display_name(s: &SessionRecord) -> Option<String> {
    s.name.clone().or_else(|| str_field(&s.agent_snapshot, "name"))
}

/// What S1/S2 did.
pub struct Created {
    pub status: u16,
    pub body: SessionResponse,
    pub session_id: String,
    pub accepted: Option<Accepted>,
}

impl Engine {
    /// The session if the caller may read it: invisible → 404, visible without the
    /// right → 403 (§2.5).
    pub async fn session_for(&self, caller: &Caller, id: &str) -> Result<SessionRecord, ApiError> {
        self.session_with_right(caller, id, false).await
    }

    /// The session's agent, for turns on a session the caller may use (the session
    /// grant authorizes; the agent itself need not be visible). Deleted → 404.
    async fn session_agent(&self, s: &SessionRecord) -> Result<store::AgentRecord, ApiError> {
        self.store
            .agent(&s.agent_id)
            .await
            .map_err(db)?
            .filter(|a| a.deleted_at.is_none() && a.is_active)
            .ok_or_else(|| crate::agents::agent_not_found(&s.agent_id))
    }

    /// The session for sending, queueing, cancelling and approvals (creator, editors).
    pub async fn session_for_use(&self, caller: &Caller, id: &str) -> Result<SessionRecord, ApiError> {
        self.session_with_right(caller, id, true).await
    }

    pub fn message_payload(m: &store::MessageRecord) -> MessagePayload {
        let (role, content) = if m.role == "user" {
            (Role::User, Some(m.content.clone().unwrap_or_default()))
        } else {
            let t = text_of(&m.parts);
            (Role::Assistant, (!t.is_empty()).then_some(t))
        };
        MessagePayload {
            id: m.id.clone(),
            role,
            content,
            created_at: wire::time::v1(m.created_at),
            creator_id: m.creator_id.clone(),
            parts: Part::list_from_stored(&m.parts),
        }
    }

    /// Open asks of the session's current run.
    pub async fn pending_approvals(&self, s: &SessionRecord) -> Result<Vec<PendingApproval>, ApiError> {
        if s.state != SessionState::ApprovalRequired {
            return Ok(vec![]);
        }
        let Some(run) = &s.current_run_id else { return Ok(vec![]) };
        let steps = self.store.run_steps(run).await.map_err(db)?;
        Ok(steps.iter().filter(|st| st.state == "awaiting").filter_map(|st| public_approval(&st.output["approval"])).collect())
    }

    /// Why a failed session's last run failed.
    async fn failure(&self, s: &SessionRecord) -> Result<Option<wire::sessions::RunFailure>, ApiError> {
        if s.state != SessionState::Failed {
            return Ok(None);
        }
        let Some(run) = &s.current_run_id else { return Ok(None) };
        let text = self.store.run(run).await.map_err(db)?.and_then(|r| r.error_message);
        let text: String = text.as_deref().unwrap_or("RuntimeError: Agent encountered an error while processing").chars().take(4096).collect();
        Ok(Some(wire::sessions::RunFailure::parse(&text)))
    }

    /// The Session object (§8.0).
    pub async fn session_view(&self, s: &SessionRecord, with_messages: bool) -> Result<Session, ApiError> {
        let messages = if with_messages { self.store.messages(&s.id).await.map_err(db)? } else { vec![] };
        let mut people: Vec<String> = vec![s.creator_user_id.clone()];
        for m in &messages {
            if let Some(c) = &m.creator_id {
                if !people.contains(c) {
                    people.push(c.clone());
                }
            }
        }
        let users = self.store.users_by_ids(&people).await.map_err(db)?;
        let participants: Map<String, Value> =
            users.iter().map(|u| (u.id.clone(), json!({"first_name": u.first_name, "last_name": u.last_name, "email": u.email}))).collect();
        let creator = users.iter().find(|u| u.id == s.creator_user_id).map(crate::agents::creator_payload);
        let agent = self.store.agent(&s.agent_id).await.map_err(db)?;
        let agent_tools: Vec<Value> = agent.as_ref().map(|a| crate::agents::public_tools(&a.config.tools)).unwrap_or_default();
        let u = &s.usage;
        let snap = &s.agent_snapshot;
        Ok(Session {
            id: s.id.clone(),
            agent_id: s.agent_id.clone(),
            name: display_name(s),
            kind: kind_of(s),
            state: state_of(s),
            messages: messages.iter().map(Self::message_payload).collect(),
            created_at: wire::time::v1(s.created_at),
            agent_name: agent.as_ref().map(|a| a.config.name.clone()).or_else(|| str_field(snap, "name")),
            agent_team_id: str_field(snap, "team_id"),
            agent_creator_user_id: str_field(snap, "creator_user_id"),
            agent_icon_url: str_field(snap, "icon_url"),
            agent_tools,
            participants,
            creator,
            usage: SessionUsage {
                credit_cost: u.get("credit_cost").and_then(Value::as_f64).unwrap_or(0.0),
                tool_credit_cost: 0.0,
                flow_credit_cost: 0.0,
                input_tokens: u.get("input_tokens").and_then(Value::as_i64).unwrap_or(0),
                output_tokens: u.get("output_tokens").and_then(Value::as_i64).unwrap_or(0),
            },
            provenance: None,
            incognito: self.config.incognito,
            pending_approvals: self.pending_approvals(s).await?,
            error: self.failure(s).await?,
        })
    }

    /// `{"session": …, "queue_position": …}`.
    pub async fn session_response(&self, s: &SessionRecord, with_messages: bool) -> Result<SessionResponse, ApiError> {
        let session = self.session_view(s, with_messages).await?;
        let queue_position = match (s.state, &s.current_run_id) {
            (SessionState::Queued, Some(r)) => match self.store.run(r).await.map_err(db)? {
                Some(run) => Some(self.store.queue_position(&run).await.map_err(db)?),
                None => None,
            },
            _ => None,
        };
        Ok(SessionResponse { session, queue_position })
    }

    async fn reload(&self, id: &str) -> Result<SessionRecord, ApiError> {
        self.store.session(id).await.map_err(db)?.ok_or_else(|| session_not_found(id))
    }

    /// S1 (and S2 when `require_input`).
    pub async fn create_session(
        &self,
        caller: &Caller,
        agent_id: &str,
        req: SessionCreateRequest,
        kind: &str,
        require_input: bool,
    ) -> Result<Created, ApiError> {
        let agent = self.visible_agent(caller, agent_id).await?;
        let text = content_text(req.input.as_ref(), req.message.as_ref())?;
        if require_input && text.is_none() {
            return Err(ApiError::new(ErrorCode::InvalidInput, "Streaming a new session needs input.").param("input"));
        }
        let id = match req.session_id {
            Some(id) if !wire::ids::is_valid_caller_id(&id) => {
                return Err(ApiError::new(ErrorCode::InvalidId, "session_id must match ^[A-Za-z0-9_-]{1,128}$.").param("session_id"))
            }
            Some(id) => id,
            None => wire::ids::new_id("sess"),
        };
        let name = req.name.as_deref().map(check_name).transpose()?;
        let metadata = req.metadata.unwrap_or_default();
        if (req.incognito == Some(true) || agent.config.incognito) && !self.config.incognito {
            return Err(ApiError::not_implemented("Incognito sessions").param("incognito"));
        }
        let stored_meta = json!({"client": metadata});
        match text {
            None => {
                let now = self.now();
                let s = SessionRecord {
                    id: id.clone(),
                    agent_id: agent.id.clone(),
                    creator_user_id: caller.user.id.clone(),
                    team_id: agent.team_id.clone(),
                    organization_id: caller.user.organization_id.clone(),
                    kind: kind.into(),
                    name,
                    state: SessionState::Idle,
                    metadata: stored_meta,
                    agent_snapshot: super::agent_snapshot(&agent),
                    usage: json!({}),
                    last_seq: 0,
                    purged_through: 0,
                    current_run_id: None,
                    created_at: now,
                    updated_at: now,
                };
                match self.store.create_session(&s, vec![]).await {
                    Ok(_) => {}
                    Err(store::StoreError::Conflict(_)) => return Err(refused(TurnRefused::SessionExists, self)),
                    Err(e) => return Err(db(e)),
                }
                let body = self.session_response(&s, true).await?;
                Ok(Created { status: 201, body, session_id: id, accepted: None })
            }
            Some(text) => {
                let target = TurnTarget::New { id: id.clone(), kind, name, metadata: stored_meta };
                let acc = self.accept_turn(&caller.user, &agent, target, TurnInput { text, ..Default::default() }).await.map_err(|e| refused(e, self))?;
                let s = self.reload(&id).await?;
                let body = self.session_response(&s, true).await?;
                Ok(Created { status: 202, body, session_id: id, accepted: Some(acc) })
            }
        }
    }

    /// S3.
    pub async fn list_sessions(&self, caller: &Caller, agent_id: &str, q: &Query) -> Result<SessionListResponse, ApiError> {
        let page_size = q.page_size()?;
        let sort = q.str("sort_order").unwrap_or("newest");
        if !["newest", "oldest", "name_asc", "name_desc", "credits_desc", "credits_asc"].contains(&sort) {
            return Err(ApiError::new(ErrorCode::InvalidSort, "sort_order must be newest, oldest, name_asc, name_desc, credits_desc or credits_asc.")
                .param("sort_order"));
        }
        let states: Option<Vec<SessionState>> = match q.str("state") {
            None => None,
            Some(v) => {
                let mut list = Vec::new();
                for x in v.split(',').map(str::trim).filter(|x| !x.is_empty()) {
                    let Some(st) = SessionState::parse(x) else {
                        return Err(ApiError::invalid_request(
                            "state",
                            format!("Unknown state {x:?}; use idle, queued, processing, approval_required, completed, failed or cancelled."),
                        ));
                    };
                    list.push(st);
                }
                Some(list)
            }
        };
        let kind = q.str("type");
        if let Some(k) = kind {
            if !["api", "tool", "flow", "subagent"].contains(&k) {
                return Err(ApiError::invalid_request("type", "type must be api, tool, flow or subagent."));
            }
        }
        let agent = self.visible_agent(caller, agent_id).await?;
        let search = q.str("search").or_else(|| q.str("search_query")).map(str::to_ascii_lowercase);
        let creator = q.str("creator_user_id");
        let trigger = q.str("trigger_id");
        let binding = format!(
            "{agent_id}|{}|{:?}|{}|{}|{}|{}|{sort}",
            caller.user.id,
            states,
            kind.unwrap_or(""),
            creator.unwrap_or(""),
            search.as_deref().unwrap_or(""),
            trigger.unwrap_or("")
        );
        let desc = matches!(sort, "newest" | "name_desc" | "credits_desc");
        let req = PageRequest { route: "S3", binding, page_size, cursor: q.str("cursor"), default_page_size: Some(20) };
        let start = self.page_start(&req, desc)?;
        let size = start.size.unwrap_or(20);
        let rows = {
            let filter = store::SessionFilter {
                agent_id: agent.id.clone(),
                reader: caller.reader(),
                own_team: caller.scope_team().map(str::to_string),
                states,
                kind: kind.map(str::to_string),
                creator: creator.map(str::to_string),
                search,
                trigger_id: trigger.map(str::to_string),
            };
            let order = match sort {
                "name_asc" | "name_desc" => store::SessionSort::Name,
                "credits_desc" | "credits_asc" => store::SessionSort::Credits,
                _ => store::SessionSort::Created,
            };
            let window = store::PageWindow { after: start.after, limit: size.saturating_add(1), desc };
            self.store.list_sessions(&filter, order, &window).await.map_err(db)?
        };
        let rows = rows.into_iter().map(|(k, s)| ((k, s.id.clone()), s)).collect();
        let (page, next) = self.page_of(&req, size, rows, desc)?;
        let mut items = Vec::with_capacity(page.len());
        for s in &page {
            items.push(self.session_view(s, false).await?);
        }
        Ok(SessionListResponse { sessions: items, next_cursor: next })
    }

    /// S6: closed body `{"name"}` (the type denies other fields).
    pub async fn rename_session(&self, caller: &Caller, id: &str, req: SessionRenameRequest) -> Result<SessionResponse, ApiError> {
        let name = check_name(&req.name)?;
        let s = self.session_for_use(caller, id).await?;
        self.store.rename_session(&s.id, &name).await.map_err(db)?;
        let s = self.reload(id).await?;
        self.session_response(&s, true).await
    }

    /// Ends a paused run whose asks are dismissed by a new message (§6.1).
    async fn dismiss_paused(&self, s: &SessionRecord) -> Result<(), ApiError> {
        let Some(run_id) = &s.current_run_id else { return Ok(()) };
        let Ok(t) = run_transition(RunState::ApprovalRequired, SessionEvent::Cancel) else { return Ok(()) };
        let u = RunUpdate { transition: Some(t), finish_reason: Some("cancelled"), terminal: true, only_if_unleased: true, ..RunUpdate::new(run_id, None) };
        match self.store.update_run(u).await {
            Ok(Some(ev)) => self.bus.publish(ev),
            // Resumed or cancelled by someone else first: the turn that follows sees
            // the session's state as it is now.
            Ok(None) | Err(store::StoreError::Refused { .. }) => {}
            Err(e) => return Err(db(e)),
        }
        Ok(())
    }

    /// Validates S7 attachments against the session's uploads; returns file parts.
    async fn attachment_parts(&self, s: &SessionRecord, list: Option<&Vec<Attachment>>) -> Result<Vec<Value>, ApiError> {
        let Some(list) = list else { return Ok(vec![]) };
        if list.len() > 10 {
            return Err(ApiError::new(ErrorCode::InvalidAttachment, "At most 10 attachments per message.").param("attachments"));
        }
        let files = self.store.session_files(&s.id).await.map_err(db)?;
        let mut parts = Vec::new();
        for (i, a) in list.iter().enumerate() {
            let param = format!("attachments[{i}].file_name");
            let name = a.file_name.as_str();
            let f = files.iter().find(|f| f.file_name == name).ok_or_else(|| {
                ApiError::new(ErrorCode::InvalidAttachment, format!("{name:?} is not a file uploaded to this session (POST /sessions/{}/files).", s.id))
                    .param(&param)
            })?;
            let mut part =
                json!({"id": wire::ids::new_id("part"), "type": "file", "file": {"file_name": f.file_name, "media_type": f.media_type, "size": f.size}});
            if let Some(text) = self.attachment_text(f).await {
                part["_text"] = json!(text);
            }
            parts.push(part);
        }
        Ok(parts)
    }

    /// S7 with `delivery: immediate` (default).
    pub async fn send_message(&self, caller: &Caller, id: &str, req: &SessionMessageRequest) -> Result<(SessionResponse, Accepted), ApiError> {
        let text = require_content(req.input.as_ref(), req.message.as_ref())?;
        let s = self.session_for_use(caller, id).await?;
        let parts = self.attachment_parts(&s, req.attachments.as_ref()).await?;
        let agent = self.session_agent(&s).await?;
        if s.state == SessionState::ApprovalRequired {
            self.dismiss_paused(&s).await?;
        }
        let s = self.reload(id).await?;
        let acc = self
            .accept_turn(&caller.user, &agent, TurnTarget::Existing(&s), TurnInput { text, parts, ..Default::default() })
            .await
            .map_err(|e| refused(e, self))?;
        let s = self.reload(id).await?;
        Ok((self.session_response(&s, true).await?, acc))
    }

    /// S7 `delivery: queued` and S13: append to the session queue, drain if idle.
    pub async fn queue_message(
        &self,
        caller: &Caller,
        id: &str,
        content: (Option<&MessageContent>, Option<&MessageContent>),
        attachments: Option<&Vec<Attachment>>,
    ) -> Result<(QueuedMessageRecord, Vec<QueuedMessageRecord>), ApiError> {
        self.no_queue_when_incognito()?;
        let text = require_content(content.0, content.1)?;
        if attachments.is_some_and(|a| !a.is_empty()) {
            return Err(ApiError::invalid_request("attachments", "Queued messages carry text only; send attachments with delivery: immediate."));
        }
        let s = self.session_for_use(caller, id).await?;
        let now = self.now();
        let q = QueuedMessageRecord { id: wire::ids::new_id("qm"), session_id: s.id.clone(), input: text, created_at: now, updated_at: now };
        if !self.store.enqueue_message(&q, MAX_QUEUE).await.map_err(db)? {
            return Err(ApiError::new(
                ErrorCode::QueueFull,
                format!("The session already has {MAX_QUEUE} queued messages; wait for some to be sent or delete one."),
            ));
        }
        let queue = self.store.queued_messages(&s.id).await.map_err(db)?;
        self.drain_queue(&s.id).await;
        Ok((q, queue))
    }

    fn no_queue_when_incognito(&self) -> Result<(), ApiError> {
        if self.config.incognito {
            return Err(ApiError::invalid_request("delivery", "Incognito sessions have no message queue; send with delivery: immediate."));
        }
        Ok(())
    }

    pub fn queue_items(queue: &[QueuedMessageRecord]) -> Vec<QueuedMessage> {
        queue.iter().enumerate().map(|(i, q)| queued_message(q, i + 1)).collect()
    }

    /// S13 response.
    pub async fn queue_message_response(&self, caller: &Caller, id: &str, req: QueueMessageRequest) -> Result<SessionQueuedMessageResponse, ApiError> {
        let (q, queue) = self.queue_message(caller, id, (req.input.as_ref(), req.message.as_ref()), None).await?;
        let pos = queue.iter().position(|x| x.id == q.id).map(|p| p + 1).unwrap_or(1);
        Ok(SessionQueuedMessageResponse { queue: Self::queue_items(&queue), queued_message: queued_message(&q, pos) })
    }

    /// S12.
    pub async fn list_queue(&self, caller: &Caller, id: &str) -> Result<SessionQueueResponse, ApiError> {
        let s = self.session_for(caller, id).await?;
        let queue = self.store.queued_messages(&s.id).await.map_err(db)?;
        Ok(SessionQueueResponse { queue: Self::queue_items(&queue) })
    }

    fn qm_not_found(qid: &str) -> ApiError {
        ApiError::new(ErrorCode::QueuedMessageNotFound, format!("Queued message {qid} was not found (it may have been sent already)."))
            .param("queued_message_id")
    }

    /// S14.
    pub async fn edit_queued(&self, caller: &Caller, id: &str, qid: &str, req: QueueMessageRequest) -> Result<SessionQueuedMessageResponse, ApiError> {
        self.no_queue_when_incognito()?;
        let text = require_content(req.input.as_ref(), req.message.as_ref())?;
        let s = self.session_for_use(caller, id).await?;
        if !self.store.edit_queued_message(&s.id, qid, &text, self.now()).await.map_err(db)? {
            return Err(Self::qm_not_found(qid));
        }
        let queue = self.store.queued_messages(&s.id).await.map_err(db)?;
        let (pos, q) = queue.iter().enumerate().find(|(_, q)| q.id == qid).ok_or_else(|| Self::qm_not_found(qid))?;
        Ok(SessionQueuedMessageResponse { queue: Self::queue_items(&queue), queued_message: queued_message(q, pos + 1) })
    }

    /// S15.
    pub async fn delete_queued(&self, caller: &Caller, id: &str, qid: &str) -> Result<SessionQueueResponse, ApiError> {
        self.no_queue_when_incognito()?;
        let s = self.session_for_use(caller, id).await?;
        if !self.store.delete_queued_message(&s.id, qid).await.map_err(db)? {
            return Err(Self::qm_not_found(qid));
        }
        let queue = self.store.queued_messages(&s.id).await.map_err(db)?;
        Ok(SessionQueueResponse { queue: Self::queue_items(&queue) })
    }

    /// Waits (bounded) until the session leaves `processing`/`queued`.
    async fn wait_settled(&self, id: &str, within: std::time::Duration) -> Result<SessionRecord, ApiError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let s = self.reload(id).await?;
            if !matches!(s.state.as_str(), "processing" | "queued") || tokio::time::Instant::now() >= deadline {
                return Ok(s);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Stops the session's active run: queued/paused runs end at once; a running one is
    /// signalled and given up to 3 s to stop.
    async fn stop_active(&self, s: &SessionRecord, stop: crate::Stop) -> Result<SessionRecord, ApiError> {
        let Some(run_id) = s.current_run_id.clone() else { return Ok(s.clone()) };
        let reason = if stop == crate::Stop::Interrupted { FinishReason::Interrupted } else { FinishReason::Cancelled };
        let from = RunState::of_session(s.state).filter(|r| !r.is_terminal());
        if let Some(t) = from.and_then(|from| run_transition(from, SessionEvent::Cancel).ok()) {
            let u = RunUpdate {
                transition: Some(t),
                finish_reason: Some(reason.as_str()),
                events: vec![StreamEvent::finish(&s.id, reason, SessionState::Cancelled, Some(EventUsage::from_value(&s.usage))).to_value()],
                terminal: true,
                only_if_unleased: true,
                ..RunUpdate::new(&run_id, None)
            };
            match self.store.update_run(u).await {
                Ok(Some(ev)) => {
                    self.bus.publish(ev);
                    return self.reload(&s.id).await;
                }
                // A worker holds it (below), or the run moved on (claimed, finished):
                // the signal path below handles both.
                Ok(None) | Err(store::StoreError::Refused { .. }) => {}
                Err(e) => return Err(db(e)),
            }
        }
        // A worker holds it. Signal a run of this process first: the cancel request's
        // notice (shared database) must not reach it before the reason (an S16 interrupt
        // is not a cancel). A run on another replica learns of it from the notice.
        self.signal_run(&run_id, stop);
        self.store.request_cancel(&run_id).await.map_err(db)?;
        self.wait_settled(&s.id, std::time::Duration::from_secs(3)).await
    }

    /// S9.
    pub async fn cancel_session(&self, caller: &Caller, id: &str) -> Result<SessionResponse, ApiError> {
        let s = self.session_for_use(caller, id).await?;
        let state = s.state;
        let s = match transition(state, SessionEvent::Cancel) {
            Ok(to) if to != state => {
                let stopped = self.stop_active(&s, crate::Stop::Cancelled).await?;
                // The run ends on its worker (not in this request's writes): recorded here.
                let details = serde_json::json!({"session_id": s.id, "agent_id": s.agent_id, "from_state": state.as_str()});
                self.audit(&s.organization_id, "session_cancelled", None, s.team_id.as_deref(), Some(&s.id), details).await;
                stopped
            }
            _ => s,
        };
        let mut view = self.session_view(&s, false).await?;
        if state.is_active() {
            // The run is stopping or stopped; report the state the caller asked for.
            view.state = SessionState::Cancelled;
        }
        Ok(SessionResponse { session: view, queue_position: None })
    }

    /// S16: interrupt the active run and send this queued message now.
    pub async fn send_queued_now(&self, caller: &Caller, id: &str, qid: &str) -> Result<(SessionResponse, Accepted), ApiError> {
        self.no_queue_when_incognito()?;
        let s = self.session_for_use(caller, id).await?;
        let queue = self.store.queued_messages(&s.id).await.map_err(db)?;
        let q = queue.into_iter().find(|q| q.id == qid).ok_or_else(|| Self::qm_not_found(qid))?;
        let agent = self.session_agent(&s).await?;
        let s = if s.state.is_active() { self.stop_active(&s, crate::Stop::Interrupted).await? } else { s };
        let input = TurnInput { text: q.input.clone(), message_id: Some(q.id.clone()), dequeue: Some(q.id.clone()), parts: vec![] };
        let acc = self.accept_turn(&caller.user, &agent, TurnTarget::Existing(&s), input).await.map_err(|e| match e {
            TurnRefused::NotAccepting(_) => Self::qm_not_found(qid),
            other => refused(other, self),
        })?;
        let s = self.reload(id).await?;
        Ok((self.session_response(&s, true).await?, acc))
    }

    /// Starts the oldest queued message if the session accepts messages (§6.1 drain).
    pub async fn drain_queue(&self, session_id: &str) {
        let Ok(Some(s)) = self.store.session(session_id).await else { return };
        if !matches!(s.state.as_str(), "idle" | "completed" | "failed" | "cancelled") {
            return;
        }
        let Ok(queue) = self.store.queued_messages(session_id).await else { return };
        let Some(q) = queue.into_iter().next() else { return };
        let Ok(Some(agent)) = self.store.agent(&s.agent_id).await else { return };
        if agent.deleted_at.is_some() || !agent.is_active {
            return;
        }
        let Ok(Some(user)) = self.store.user(&s.creator_user_id).await else { return };
        let input = TurnInput { text: q.input.clone(), message_id: Some(q.id.clone()), dequeue: Some(q.id.clone()), parts: vec![] };
        match self.accept_turn(&user, &agent, TurnTarget::Existing(&s), input).await {
            Ok(_) | Err(TurnRefused::NotAccepting(_)) => {}
            Err(e) => tracing::warn!(session_id, error = ?e, "could not deliver a queued message; it stays queued"),
        }
    }

    /// S11 (and S8 with only `approval_responses`): returns the response and the cursor
    /// of the last event before resumption.
    pub async fn resolve_approvals(&self, caller: &Caller, id: &str, items: &[ApprovalResponse]) -> Result<(SessionApprovalsResponse, i64), ApiError> {
        if items.is_empty() || items.len() > 20 {
            return Err(ApiError::new(ErrorCode::InvalidApprovalResponse, "approval_responses needs 1 to 20 items.").param("approval_responses"));
        }
        let mut parsed: Vec<(String, ApprovalAction, Option<String>, Value)> = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let p = format!("approval_responses[{i}]");
            if it.action_request_id.is_empty() {
                return Err(
                    ApiError::new(ErrorCode::InvalidApprovalResponse, format!("{p}.action_request_id is required.")).param(format!("{p}.action_request_id"))
                );
            }
            if it.reason.as_ref().is_some_and(|r| r.chars().count() > 1000) {
                return Err(ApiError::new(ErrorCode::InvalidApprovalResponse, format!("{p}.reason must be a string of at most 1000 characters."))
                    .param(format!("{p}.reason")));
            }
            if parsed.iter().any(|(a, ..)| *a == it.action_request_id) {
                return Err(ApiError::new(ErrorCode::InvalidApprovalResponse, format!("{p}.action_request_id repeats an earlier item."))
                    .param(format!("{p}.action_request_id")));
            }
            let values = Value::Object(it.response.as_ref().and_then(|r| r.values.clone()).unwrap_or_default());
            parsed.push((it.action_request_id.clone(), it.action, it.reason.clone(), values));
        }
        let s = self.session_for_use(caller, id).await?;
        if s.state != SessionState::ApprovalRequired {
            return Err(ApiError::new(ErrorCode::NoPendingApprovals, format!("The session is {}; nothing waits for approval.", s.state)));
        }
        let run_id = s.current_run_id.clone().ok_or_else(|| ApiError::new(ErrorCode::NoPendingApprovals, "Nothing waits for approval."))?;
        let mut steps: Vec<StepRecord> = self.store.run_steps(&run_id).await.map_err(db)?;
        let by_areq = |steps: &[StepRecord], areq: &str| {
            steps.iter().position(|st| st.output.get("approval").and_then(|a| a.get("action_request_id")).and_then(Value::as_str) == Some(areq))
        };
        // Validate human-input answers before writing anything.
        for (i, (areq, action, _, values)) in parsed.iter().enumerate() {
            if let Some(ix) = by_areq(&steps, areq) {
                let ap = &steps[ix].output["approval"];
                if steps[ix].state == "awaiting" && *action == ApprovalAction::Accept && ap.get("type").and_then(Value::as_str) == Some("human_input") {
                    let empty = vec![];
                    for qn in ap.get("questions").and_then(Value::as_array).unwrap_or(&empty) {
                        let name = qn.get("name").and_then(Value::as_str).unwrap_or("");
                        if qn.get("required").and_then(Value::as_bool).unwrap_or(false) && values.get(name).is_none_or(Value::is_null) {
                            return Err(ApiError::new(ErrorCode::InvalidApprovalResponse, format!("Question {name:?} is required."))
                                .param(format!("approval_responses[{i}].response.values.{name}")));
                        }
                    }
                }
            }
        }
        let mut results = Vec::new();
        for (areq, action, reason, values) in &parsed {
            let accept = *action == ApprovalAction::Accept;
            let outcome = match by_areq(&steps, areq) {
                None => ApprovalOutcome::NotFound,
                Some(ix) if steps[ix].state == "awaiting" => {
                    let verdict = if accept { "approved" } else { "rejected" };
                    let mut st = steps[ix].clone();
                    st.state = verdict.into();
                    st.output["decision"] =
                        json!({"action": if accept { "accept" } else { "reject" }, "reason": reason, "values": values, "by": caller.user.id});
                    let u = RunUpdate { step: Some(&st), only_if_unleased: true, ..RunUpdate::new(&run_id, None) };
                    self.store.update_run(u).await.map_err(db)?;
                    steps[ix] = st;
                    if accept {
                        ApprovalOutcome::Accepted
                    } else {
                        ApprovalOutcome::Rejected
                    }
                }
                Some(ix) => {
                    let earlier = steps[ix].output.get("decision").and_then(|d| d.get("action")).and_then(Value::as_str).unwrap_or("accept");
                    if earlier == "accept" {
                        ApprovalOutcome::AlreadyAccepted
                    } else {
                        ApprovalOutcome::AlreadyRejected
                    }
                }
            };
            results.push(ApprovalResult { action_request_id: areq.clone(), action: *action, outcome });
        }
        let s = self.reload(id).await?;
        let cursor = s.last_seq;
        if !steps.iter().any(|st| st.state == "awaiting") {
            let to = transition(SessionState::ApprovalRequired, SessionEvent::ApprovalsResolved).unwrap_or(SessionState::Processing);
            let start = StreamEvent::Start { interaction_id: s.id.clone(), session_id: s.id.clone(), message_id: None, state: to };
            let t = run_transition(RunState::ApprovalRequired, SessionEvent::ApprovalsResolved)
                .map_err(|from| db(store::StoreError::Refused { expected: "approval_required", actual: from.as_str().into() }))?;
            let u =
                RunUpdate { transition: Some(t), events: vec![start.to_value()], only_if_unleased: true, enqueue_job: true, ..RunUpdate::new(&run_id, None) };
            match self.store.update_run(u).await {
                Ok(Some(ev)) => {
                    self.bus.publish(ev);
                    self.wake.notify_one();
                }
                // Cancelled (or resumed by a concurrent decision) first: nothing to resume.
                Ok(None) | Err(store::StoreError::Refused { .. }) => {}
                Err(e) => return Err(db(e)),
            }
        }
        let s = self.reload(id).await?;
        let session = self.session_view(&s, true).await?;
        Ok((SessionApprovalsResponse { session, results, stream_cursor: Some(format!("{}:{cursor}", s.id)) }, cursor))
    }

    /// Where S5 starts and whether it can: `Ok(Some(after))`, or a synthetic final
    /// event (`Err`) for not-resumable cursors, finished runs and never-run sessions.
    pub async fn resume_point(&self, s: &SessionRecord, last_cursor: Option<&str>) -> Result<Result<i64, StreamFrame>, ApiError> {
        let state = state_of(s);
        let synthetic = |reason: FinishReason, _: &SessionState, seq: i64| StreamFrame {
            event: StreamEvent::finish(&s.id, reason, state, None),
            stream_cursor: format!("{}:{seq}", s.id),
        };
        let active = s.state.is_active();
        let after = match last_cursor {
            Some(c) => {
                let parsed = c.rsplit_once(':').and_then(|(sid, n)| (sid == s.id).then(|| n.parse::<i64>().ok()).flatten());
                match parsed {
                    Some(n) if n >= s.purged_through && n <= s.last_seq => n,
                    _ => return Ok(Err(synthetic(FinishReason::NotResumable, &s.state, s.last_seq))),
                }
            }
            None => match &s.current_run_id {
                None => return Ok(Err(synthetic(FinishReason::Idle, &s.state, s.last_seq))),
                Some(r) => self.store.first_event_of_run(&s.id, r).await.map_err(db)?.map(|f| f - 1).unwrap_or(s.last_seq),
            },
        };
        if !active && after >= s.last_seq {
            let reason = match &s.current_run_id {
                Some(r) => {
                    self.store.run(r).await.map_err(db)?.and_then(|r| r.finish_reason).and_then(|f| FinishReason::parse(&f)).unwrap_or(FinishReason::Stop)
                }
                None => FinishReason::Idle,
            };
            return Ok(Err(synthetic(reason, &s.state, s.last_seq)));
        }
        Ok(Ok(after))
    }

    /// Text of an uploaded text file (≤ 1 MiB) for the model context.
    async fn attachment_text(&self, f: &store::SessionFileRecord) -> Option<String> {
        let is_text = f.media_type.starts_with("text/")
            || matches!(f.media_type.as_str(), "application/json" | "application/xml" | "application/x-yaml" | "application/csv");
        if !is_text || f.size > 1024 * 1024 {
            return None;
        }
        let bytes = self.read_blob(&f.blob_key, 1024 * 1024).await?;
        String::from_utf8(bytes).ok()
    }
}
