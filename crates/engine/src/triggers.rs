//! Agent triggers (API.md §8.6 G20–G28): schedules (cron in an IANA time zone, or one
//! `run_at`), webhooks (a secret URL) and stored-only integration triggers.
//!
//! Exactly-once firing rests on two store rules: a schedule's due time is claimed with a
//! conditional update (`WHERE next_fire_at = <the due time>`, one winner among replicas)
//! in the same transaction that records the firing, and every firing has a unique
//! `(trigger, delivery key)` and a session id derived from it, so starting it again
//! (a retried webhook, a restart between claim and start) finds the same session. A
//! schedule that missed several windows while the server was down fires once, for the
//! latest due time, then moves to the next time after now. Time comes from
//! `Engine::clock` only.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use store::{PageWindow, ScheduleAdvance, TriggerRecord, TriggerRunRecord, TriggerRunView};
use tokio::sync::watch;
use wire::triggers::{
    AgentTrigger, AgentTriggerCreateRequest, AgentTriggerDeleteResponse, AgentTriggerResponse, AgentTriggerRun, AgentTriggerRunsResponse,
    AgentTriggerStatsResponse, AgentTriggerUpdateRequest, AgentTriggerWebhookUrlResponse, AgentTriggersResponse, IntegrationTriggerConfig,
    IntegrationTriggerPayload, TriggerDeliveryResponse, TriggerOperator, TriggerOperatorParameter, TriggerOperatorsResponse, TriggerType,
};
use wire::{ApiError, ErrorCode};

use crate::input::Query;
use crate::pagination::PageRequest;
use crate::sessions::{TurnInput, TurnRefused, TurnTarget};
use crate::{db, Caller, Engine};

/// Where webhook deliveries go, under the public URL.
pub const WEBHOOK_PATH: &str = "/hooks/v1/triggers";
/// Largest webhook body accepted.
pub const MAX_WEBHOOK_BODY: usize = 1024 * 1024;
/// A firing still `pending` this long after its claim is started again (its process
/// stopped in between); the session id it derives makes that idempotent.
const RECOVER_AFTER_MICROS: i64 = 60_000_000;
/// A firing that could not be started for this long is given up as failed.
const GIVE_UP_AFTER_MICROS: i64 = 3600 * 1_000_000;
const MAX_PROMPT_CHARS: usize = 100_000;
const RUN_STATES: &[&str] = &["pending", "queued", "processing", "approval_required", "completed", "failed", "cancelled", "idle"];

pub fn trigger_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::TriggerNotFound, format!("Trigger {id} was not found on this agent.")).param("trigger_id")
}

fn bad(param: &str, msg: impl Into<String>) -> ApiError {
    ApiError::invalid_request(param, msg)
}

/// An IANA time zone name (`Europe/Paris`, `UTC`).
pub fn parse_timezone(s: &str) -> Result<Tz, ApiError> {
    Tz::from_str(s.trim()).map_err(|_| bad("timezone", format!("Unknown time zone {s:?}; use an IANA name such as \"UTC\" or \"America/New_York\".")))
}

/// A five-field cron expression (minute hour day-of-month month day-of-week).
pub fn parse_cron(s: &str) -> Result<Cron, ApiError> {
    let s = s.trim();
    if s.split_whitespace().count() != 5 {
        return Err(bad("cron_expression", format!("Invalid cron expression {s:?}: use five fields (minute hour day-of-month month day-of-week).")));
    }
    Cron::from_str(s).map_err(|e| bad("cron_expression", format!("Invalid cron expression {s:?}: {e}.")))
}

/// The first time the expression matches strictly after `after` (micros), in `tz`.
pub fn next_cron_time(cron: &Cron, tz: Tz, after: i64) -> Option<i64> {
    let start = Utc.timestamp_micros(after).single()?.with_timezone(&tz);
    cron.find_next_occurrence(&start, false).ok().map(|t| t.timestamp_micros())
}

/// ISO 8601; without an offset it is read in `tz`.
pub fn parse_run_at(s: &str, tz: Tz) -> Result<i64, ApiError> {
    let s = s.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(dt.timestamp_micros());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(ndt) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            if let Some(t) = tz.from_local_datetime(&ndt).earliest() {
                return Ok(t.timestamp_micros());
            }
        }
    }
    Err(bad("run_at", format!("run_at {s:?} is not an ISO 8601 date-time (e.g. 2030-01-31T09:00:00Z).")))
}

/// Fills `{{path}}` placeholders from `ctx` (`payload.a.b`, `body`, `trigger.name`, …):
/// strings as they are, other values as compact JSON, missing paths as "".
pub fn render_template(template: &str, ctx: &Value) -> String {
    crate::flows::document::render_placeholders(template, |path| {
        let mut v = Some(ctx);
        for seg in path.split('.').filter(|s| !s.is_empty()) {
            v = v.and_then(|v| match v {
                Value::Object(m) => m.get(seg),
                Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            });
        }
        Some(v.map(crate::flows::document::value_text).unwrap_or_default())
    })
}

/// The session a delivery starts: the same for the same delivery, always.
fn session_id_for(trigger_id: &str, delivery_key: &str) -> String {
    let digest = Sha256::digest(format!("{trigger_id}\n{delivery_key}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("sess_trg{hex}")
}

fn ts(v: Option<i64>) -> Option<String> {
    v.map(wire::time::v1)
}

fn check_prompt(p: &str) -> Result<String, ApiError> {
    if p.trim().is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidInput, "prompt is empty.").param("prompt"));
    }
    if p.chars().count() > MAX_PROMPT_CHARS {
        return Err(ApiError::new(ErrorCode::InvalidInput, format!("prompt is longer than {MAX_PROMPT_CHARS} characters.")).param("prompt"));
    }
    Ok(p.to_string())
}

fn check_name(n: &str) -> Result<String, ApiError> {
    let n = n.trim();
    if n.is_empty() || n.chars().count() > 256 {
        return Err(ApiError::new(ErrorCode::InvalidName, "name must be 1 to 256 characters after trimming.").param("name"));
    }
    Ok(n.to_string())
}

fn check_max_failures(m: i64) -> Result<i64, ApiError> {
    if !(1..=1000).contains(&m) {
        return Err(bad("max_failures", "max_failures must be an integer from 1 to 1000."));
    }
    Ok(m)
}

fn integration_unavailable() -> ApiError {
    bad(
        "enabled",
        "Integration triggers cannot be enabled on Openloop: it has no integration connections to receive events from. The trigger is stored disabled; use a schedule or webhook trigger to start sessions.",
    )
}

fn integration_text(cfg: &IntegrationTriggerConfig) -> Result<String, ApiError> {
    if cfg.operator_name.trim().is_empty() {
        return Err(bad("integration.operator_name", "integration.operator_name is empty."));
    }
    serde_json::to_string(cfg).map_err(|_| ApiError::internal())
}

/// The schedule of a trigger: when it fires next after `now`, and whether a `run_at`
/// in the past makes it unschedulable.
fn next_fire(t: &TriggerRecord, now: i64) -> Result<Option<i64>, ApiError> {
    if t.kind != "schedule" || !t.enabled {
        return Ok(None);
    }
    let tz = parse_timezone(t.timezone.as_deref().unwrap_or("UTC"))?;
    if let Some(expr) = &t.cron_expression {
        return Ok(next_cron_time(&parse_cron(expr)?, tz, now));
    }
    match t.run_at {
        Some(at) if at > now => Ok(Some(at)),
        Some(_) => Err(bad("run_at", "run_at is in the past; send a future run_at (or disable the trigger).")),
        None => Ok(None),
    }
}

/// Operators of G26: the kinds of trigger this server fires itself.
fn operators() -> Vec<TriggerOperator> {
    let p = |name: &str, data_type: &str, description: &str, required: bool, default_value: Value| TriggerOperatorParameter {
        name: name.into(),
        data_type: data_type.into(),
        description: description.into(),
        required,
        default_value,
        is_dynamic: false,
        is_hidden: false,
    };
    vec![
        TriggerOperator {
            name: "schedule".into(),
            display_name: "Schedule".into(),
            version: "1".into(),
            description: "Starts a session with the prompt on a cron schedule in a time zone, or once at run_at. A schedule missed while the server was down fires once when it is back.".into(),
            category: "time".into(),
            credential_types: vec![],
            parameters: vec![
                p("prompt", "string", "The message each firing sends to a new session.", true, Value::Null),
                p("cron_expression", "string", "Five-field cron expression (minute hour day-of-month month day-of-week); exclusive with run_at.", false, Value::Null),
                p("run_at", "string", "ISO 8601 date-time of a single firing; exclusive with cron_expression.", false, Value::Null),
                p("timezone", "string", "IANA time zone the expression is read in.", false, json!("UTC")),
                p("max_failures", "integer", "Disable the trigger after this many consecutive failed firings.", false, Value::Null),
            ],
        },
        TriggerOperator {
            name: "webhook".into(),
            display_name: "Webhook".into(),
            version: "1".into(),
            description: format!(
                "Starts a session when its secret URL ({WEBHOOK_PATH}/{{trigger_id}}?token=…) receives a POST. {{{{payload.field}}}}, {{{{body}}}} and {{{{trigger.name}}}} in the prompt are filled from the delivery; an Idempotency-Key or X-Delivery-Id header makes a retried delivery fire once."
            ),
            category: "http".into(),
            credential_types: vec![],
            parameters: vec![
                p("prompt", "string", "The message template each delivery sends to a new session.", true, Value::Null),
                p("pass_raw_data", "boolean", "Append the delivery's JSON body to the message.", false, json!(false)),
                p("max_failures", "integer", "Disable the trigger after this many consecutive failed firings.", false, Value::Null),
            ],
        },
    ]
}

impl Engine {
    /// The URL secret of a webhook trigger: HMAC of its id and salt under the current
    /// signing key (`kid.sig`). Nothing secret is stored; rotating the keys keeps old
    /// URLs valid while the old key is configured.
    fn webhook_token(&self, t: &TriggerRecord) -> Option<String> {
        let salt = t.webhook_salt.as_deref()?;
        let (kid, sig) = self.signer.sign(format!("openloop trigger webhook v1\n{}\n{salt}", t.id).as_bytes());
        Some(format!("{kid}.{sig}"))
    }

    fn webhook_token_ok(&self, t: &TriggerRecord, token: &str) -> bool {
        let (Some(salt), Some((kid, sig))) = (t.webhook_salt.as_deref(), token.split_once('.')) else { return false };
        self.signer.verify(kid, format!("openloop trigger webhook v1\n{}\n{salt}", t.id).as_bytes(), sig)
    }

    pub fn webhook_url(&self, t: &TriggerRecord) -> Option<String> {
        let token = self.webhook_token(t)?;
        Some(format!("{}{WEBHOOK_PATH}/{}?token={token}", self.config.public_url.trim_end_matches('/'), t.id))
    }

    fn trigger_to_wire(&self, t: &TriggerRecord, with_url: bool) -> AgentTrigger {
        let integration = t.integration.as_deref().and_then(|s| serde_json::from_str::<IntegrationTriggerConfig>(s).ok()).map(|c| IntegrationTriggerPayload {
            operator_name: c.operator_name,
            // Openloop has no integration catalogue that would version operators.
            operator_version: "unknown".into(),
            parameters: c.parameters,
        });
        AgentTrigger {
            id: t.id.clone(),
            agent_id: t.agent_id.clone(),
            kind: t.kind.clone(),
            name: t.name.clone(),
            prompt: Some(t.prompt.clone()),
            cron_expression: t.cron_expression.clone(),
            run_at: ts(t.run_at),
            timezone: t.timezone.clone(),
            pass_raw_data: Some(t.pass_raw_data),
            enabled: t.enabled,
            status: Some(t.status.clone()),
            max_failures: t.max_failures,
            webhook_url: if with_url { self.webhook_url(t) } else { None },
            created_at: ts(Some(t.created_at)),
            last_run_at: ts(t.last_run_at),
            next_run_at: ts(t.next_fire_at),
            integration,
        }
    }

    /// The agent (visible to the caller) and, for writes, the caller's right to change it.
    async fn trigger_agent(&self, caller: &Caller, agent_id: &str, write: bool) -> Result<store::AgentRecord, ApiError> {
        let agent = self.visible_agent(caller, agent_id).await?;
        if write && !self.can_update_agent(caller, &agent) {
            return Err(ApiError::new(ErrorCode::PermissionDenied, "You may not change this agent's triggers; ask its creator or a team admin."));
        }
        Ok(agent)
    }

    async fn agent_trigger(&self, agent: &store::AgentRecord, trigger_id: &str) -> Result<TriggerRecord, ApiError> {
        match self.store.trigger(trigger_id).await.map_err(db)? {
            Some(t) if t.agent_id == agent.id => Ok(t),
            _ => Err(trigger_not_found(trigger_id)),
        }
    }

    /// G20.
    pub async fn list_triggers(&self, caller: &Caller, agent_id: &str, q: &Query) -> Result<AgentTriggersResponse, ApiError> {
        let page_size = q.page_size()?;
        let agent = self.trigger_agent(caller, agent_id, false).await?;
        let req = PageRequest { route: "G20", binding: agent.id.clone(), page_size, cursor: q.str("cursor"), default_page_size: Some(50) };
        let start = self.page_start(&req, false)?;
        let size = start.size.unwrap_or(50);
        let rows = self.store.list_triggers(&agent.id, &PageWindow { after: start.after, limit: size.saturating_add(1), desc: false }).await.map_err(db)?;
        let rows = rows.into_iter().map(|(k, t)| ((k, t.id.clone()), t)).collect();
        let (page, next) = self.page_of(&req, size, rows, false)?;
        Ok(AgentTriggersResponse { agent_id: agent.id, triggers: page.iter().map(|t| self.trigger_to_wire(t, false)).collect(), next_cursor: next })
    }

    /// G21.
    pub async fn create_trigger(&self, caller: &Caller, agent_id: &str, req: AgentTriggerCreateRequest) -> Result<AgentTriggerResponse, ApiError> {
        let agent = self.trigger_agent(caller, agent_id, true).await?;
        let now = self.now();
        let prompt = check_prompt(&req.prompt)?;
        let name = req.name.as_deref().map(check_name).transpose()?;
        let max_failures = req.max_failures.map(check_max_failures).transpose()?;
        let kind = req.kind;
        let mut t = TriggerRecord {
            id: wire::ids::new_id("trg"),
            agent_id: agent.id.clone(),
            organization_id: caller.user.organization_id.clone(),
            creator_user_id: caller.user.id.clone(),
            kind: kind.as_str().into(),
            name,
            prompt,
            cron_expression: None,
            run_at: None,
            timezone: None,
            pass_raw_data: req.pass_raw_data.unwrap_or(false),
            enabled: true,
            status: "active".into(),
            max_failures,
            consecutive_failures: 0,
            integration: None,
            webhook_salt: None,
            next_fire_at: None,
            last_run_at: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        match kind {
            TriggerType::Schedule => {
                if req.integration.is_some() {
                    return Err(bad("integration", "integration is only for integration triggers."));
                }
                let tz_name = req.timezone.clone().unwrap_or_else(|| "UTC".into());
                let tz = parse_timezone(&tz_name)?;
                t.timezone = Some(tz.name().to_string());
                match (req.cron_expression.as_deref(), req.run_at.as_deref()) {
                    (Some(expr), None) => {
                        parse_cron(expr)?;
                        t.cron_expression = Some(expr.trim().to_string());
                    }
                    (None, Some(at)) => t.run_at = Some(parse_run_at(at, tz)?),
                    (Some(_), Some(_)) => return Err(bad("run_at", "A schedule takes exactly one of cron_expression or run_at, not both.")),
                    (None, None) => return Err(bad("cron_expression", "A schedule trigger needs cron_expression or run_at.")),
                }
                t.enabled = req.enabled.unwrap_or(true);
                t.status = if t.enabled { "active" } else { "paused" }.into();
                t.next_fire_at = next_fire(&t, now)?;
            }
            TriggerType::Webhook => {
                for (field, present) in
                    [("cron_expression", req.cron_expression.is_some()), ("run_at", req.run_at.is_some()), ("timezone", req.timezone.is_some())]
                {
                    if present {
                        return Err(bad(
                            field,
                            format!("Webhook triggers take only prompt (and name, pass_raw_data, enabled, max_failures); {field} is for schedules."),
                        ));
                    }
                }
                if req.integration.is_some() {
                    return Err(bad("integration", "integration is only for integration triggers."));
                }
                t.webhook_salt = Some(wire::ids::random_base62(24));
                t.enabled = req.enabled.unwrap_or(true);
                t.status = if t.enabled { "active" } else { "paused" }.into();
            }
            TriggerType::Integration => {
                let Some(cfg) = req.integration.as_ref() else {
                    return Err(bad("integration", "An integration trigger needs its integration configuration."));
                };
                for (field, present) in
                    [("cron_expression", req.cron_expression.is_some()), ("run_at", req.run_at.is_some()), ("timezone", req.timezone.is_some())]
                {
                    if present {
                        return Err(bad(field, format!("Integration triggers do not take schedule fields ({field}).")));
                    }
                }
                if req.enabled == Some(true) {
                    return Err(integration_unavailable());
                }
                t.integration = Some(integration_text(cfg)?);
                t.enabled = false;
                t.status = "unavailable".into();
            }
        }
        self.store.create_trigger(&t).await.map_err(db)?;
        Ok(AgentTriggerResponse { trigger: self.trigger_to_wire(&t, true) })
    }

    /// G22.
    pub async fn get_trigger(&self, caller: &Caller, agent_id: &str, trigger_id: &str) -> Result<AgentTriggerResponse, ApiError> {
        let agent = self.trigger_agent(caller, agent_id, false).await?;
        let t = self.agent_trigger(&agent, trigger_id).await?;
        Ok(AgentTriggerResponse { trigger: self.trigger_to_wire(&t, false) })
    }

    /// G23: only the fields sent change; schedule changes re-arm the schedule.
    pub async fn update_trigger(
        &self,
        caller: &Caller,
        agent_id: &str,
        trigger_id: &str,
        req: AgentTriggerUpdateRequest,
    ) -> Result<AgentTriggerResponse, ApiError> {
        let agent = self.trigger_agent(caller, agent_id, true).await?;
        // A concurrent edit moves the version: re-read and apply again.
        for _ in 0..5 {
            let old = self.agent_trigger(&agent, trigger_id).await?;
            let now = self.now();
            let mut t = old.clone();
            let mut reschedule = false;
            if let Some(p) = &req.prompt {
                t.prompt = check_prompt(p)?;
            }
            if let Some(n) = &req.name {
                t.name = Some(check_name(n)?);
            }
            if let Some(m) = req.max_failures {
                t.max_failures = Some(check_max_failures(m)?);
            }
            if let Some(b) = req.pass_raw_data {
                t.pass_raw_data = b;
            }
            let schedule_fields = [("cron_expression", req.cron_expression.is_some()), ("run_at", req.run_at.is_some()), ("timezone", req.timezone.is_some())];
            match t.kind.as_str() {
                "schedule" => {
                    if req.integration.is_some() {
                        return Err(bad("integration", "integration is only for integration triggers."));
                    }
                    if let Some(tz) = &req.timezone {
                        t.timezone = Some(parse_timezone(tz)?.name().to_string());
                        reschedule = true;
                    }
                    let tz = parse_timezone(t.timezone.as_deref().unwrap_or("UTC"))?;
                    match (req.cron_expression.as_deref(), req.run_at.as_deref()) {
                        (Some(_), Some(_)) => return Err(bad("run_at", "A schedule takes exactly one of cron_expression or run_at, not both.")),
                        (Some(expr), None) => {
                            parse_cron(expr)?;
                            t.cron_expression = Some(expr.trim().to_string());
                            t.run_at = None;
                            reschedule = true;
                        }
                        (None, Some(at)) => {
                            t.run_at = Some(parse_run_at(at, tz)?);
                            t.cron_expression = None;
                            reschedule = true;
                        }
                        (None, None) => {}
                    }
                }
                kind => {
                    if let Some((field, _)) = schedule_fields.iter().find(|(_, present)| *present) {
                        return Err(bad(field, format!("{field} applies only to schedule triggers; this one is a {kind} trigger.")));
                    }
                }
            }
            if t.kind == "integration" {
                if let Some(cfg) = &req.integration {
                    t.integration = Some(integration_text(cfg)?);
                }
                if req.enabled == Some(true) {
                    return Err(integration_unavailable());
                }
            } else if req.integration.is_some() {
                return Err(bad("integration", "integration applies only to integration triggers."));
            } else if let Some(e) = req.enabled {
                if e != t.enabled || (e && t.status != "active") {
                    t.enabled = e;
                    t.status = if e { "active" } else { "paused" }.into();
                    t.consecutive_failures = 0;
                    reschedule = true;
                }
            }
            if reschedule {
                t.next_fire_at = next_fire(&t, now)?;
            }
            t.version = old.version + 1;
            t.updated_at = now;
            if self.store.update_trigger(&t, old.version, reschedule).await.map_err(db)? {
                let stored = self.agent_trigger(&agent, trigger_id).await?;
                return Ok(AgentTriggerResponse { trigger: self.trigger_to_wire(&stored, false) });
            }
        }
        Err(ApiError::new(ErrorCode::AgentVersionConflict, "The trigger is being changed concurrently; retry.").retry_after(1))
    }

    /// G24.
    pub async fn delete_trigger(&self, caller: &Caller, agent_id: &str, trigger_id: &str) -> Result<AgentTriggerDeleteResponse, ApiError> {
        let agent = self.trigger_agent(caller, agent_id, true).await?;
        let t = self.agent_trigger(&agent, trigger_id).await?;
        let deleted = self.store.delete_trigger(&t.id).await.map_err(db)?;
        if !deleted {
            return Err(trigger_not_found(trigger_id));
        }
        Ok(AgentTriggerDeleteResponse { agent_id: agent.id, trigger_id: t.id, deleted: true })
    }

    /// G25: the URL embeds the secret, so reading it needs the right to change the agent.
    pub async fn trigger_webhook_url(&self, caller: &Caller, agent_id: &str, trigger_id: &str) -> Result<AgentTriggerWebhookUrlResponse, ApiError> {
        let agent = self.trigger_agent(caller, agent_id, true).await?;
        let t = self.agent_trigger(&agent, trigger_id).await?;
        Ok(AgentTriggerWebhookUrlResponse { agent_id: agent.id, trigger_id: t.id.clone(), webhook_url: self.webhook_url(&t) })
    }

    /// G26.
    pub async fn trigger_operators(&self, caller: &Caller, agent_id: &str) -> Result<TriggerOperatorsResponse, ApiError> {
        self.trigger_agent(caller, agent_id, false).await?;
        Ok(TriggerOperatorsResponse { operators: operators() })
    }

    fn run_to_wire(&self, t: &TriggerRecord, v: &TriggerRunView) -> AgentTriggerRun {
        let r = &v.run;
        let state = if r.state == "started" { v.session_state.clone().unwrap_or_else(|| "pending".into()) } else { r.state.clone() };
        let started = r.state == "started";
        AgentTriggerRun {
            gummie_trigger_run_id: r.id.clone(),
            interaction_id: started.then(|| r.session_id.clone()),
            state,
            name: t.name.clone(),
            message_id: v.user_message_id.clone(),
            continuation_mode: Some("new_session".into()),
            created_ts: ts(Some(r.created_at)),
            finished_ts: ts(v.finished_at),
            duration_ms: v.finished_at.map(|f| (f - r.created_at).max(0) / 1000),
            credit_cost: Some(v.credit_cost.unwrap_or(0.0)),
            delivery_refusal: if r.state == "failed" { r.error.clone() } else { None },
            source: r.source.clone(),
            scheduled_for: ts(r.scheduled_for),
            error: r.error.clone(),
            background_task: None,
        }
    }

    /// G27: newest first.
    pub async fn list_trigger_runs(&self, caller: &Caller, agent_id: &str, trigger_id: &str, q: &Query) -> Result<AgentTriggerRunsResponse, ApiError> {
        let page_size = q.page_size()?;
        let states: Option<Vec<String>> = match q.str("state").or_else(|| q.str("states")) {
            None => None,
            Some(v) => {
                let list: Vec<String> = v.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect();
                if let Some(x) = list.iter().find(|x| !RUN_STATES.contains(&x.as_str())) {
                    return Err(bad("state", format!("Unknown run state {x:?}; use {}.", RUN_STATES.join(", "))));
                }
                Some(list)
            }
        };
        let agent = self.trigger_agent(caller, agent_id, false).await?;
        let t = self.agent_trigger(&agent, trigger_id).await?;
        let binding = format!("{}|{}|{:?}", agent.id, t.id, states);
        let req = PageRequest { route: "G27", binding, page_size, cursor: q.str("cursor"), default_page_size: Some(20) };
        let start = self.page_start(&req, true)?;
        let size = start.size.unwrap_or(20);
        let window = PageWindow { after: start.after, limit: size.saturating_add(1), desc: true };
        let rows = self.store.list_trigger_runs(&t.id, states.as_deref(), &window).await.map_err(db)?;
        let rows = rows.into_iter().map(|(k, v)| ((k, v.run.id.clone()), v)).collect();
        let (page, next) = self.page_of(&req, size, rows, true)?;
        Ok(AgentTriggerRunsResponse { items: page.iter().map(|v| self.run_to_wire(&t, v)).collect(), next_cursor: next })
    }

    /// G28.
    pub async fn trigger_stats(&self, caller: &Caller, agent_id: &str, trigger_id: &str) -> Result<AgentTriggerStatsResponse, ApiError> {
        let agent = self.trigger_agent(caller, agent_id, false).await?;
        let t = self.agent_trigger(&agent, trigger_id).await?;
        let s = self.store.trigger_stats(&t.id).await.map_err(db)?;
        Ok(AgentTriggerStatsResponse {
            run_count: s.run_count,
            last_run_ts: ts(s.last_run_at),
            run_credits: s.credits,
            poll_credits: 0.0,
            total_credits: s.credits,
            failed_count: s.failed_count,
        })
    }

    /// A webhook delivery (`POST /hooks/v1/triggers/{id}?token=…`): one delivery id, one
    /// session. Returns whether the delivery was new.
    pub async fn deliver_trigger_webhook(
        &self,
        trigger_id: &str,
        token: Option<&str>,
        delivery_id: Option<&str>,
        body: &[u8],
    ) -> Result<(bool, TriggerDeliveryResponse), ApiError> {
        let t = match self.store.trigger(trigger_id).await.map_err(db)? {
            Some(t) if t.kind == "webhook" => t,
            _ => return Err(trigger_not_found(trigger_id)),
        };
        if !token.is_some_and(|tok| self.webhook_token_ok(&t, tok)) {
            return Err(ApiError::new(
                ErrorCode::SignatureInvalid,
                "The webhook token is missing or wrong; use the URL from GET /agents/{agent_id}/triggers/{trigger_id}/webhook-url.",
            )
            .param("token"));
        }
        let agent_live = self.store.agent(&t.agent_id).await.map_err(db)?.is_some_and(|a| a.deleted_at.is_none() && a.is_active);
        if !agent_live {
            return Err(trigger_not_found(trigger_id));
        }
        if !t.enabled {
            return Err(ApiError::new(ErrorCode::TriggerDisabled, "The trigger is disabled; enable it (PATCH enabled=true) to accept deliveries."));
        }
        if body.len() > MAX_WEBHOOK_BODY {
            return Err(ApiError::new(ErrorCode::PayloadTooLarge, format!("A webhook body may be at most {MAX_WEBHOOK_BODY} bytes.")));
        }
        let delivery_key = match delivery_id.map(str::trim) {
            Some(k) if !k.is_empty() => {
                if k.len() > 255 || k.chars().any(char::is_control) {
                    return Err(bad("Idempotency-Key", "The delivery id must be 1 to 255 printable characters."));
                }
                format!("id:{k}")
            }
            _ => format!("auto:{}", wire::ids::new_id("dlv")),
        };
        let raw = String::from_utf8_lossy(body).into_owned();
        let payload: Value = if raw.trim().is_empty() { Value::Null } else { serde_json::from_str(&raw).unwrap_or_else(|_| Value::String(raw.clone())) };
        let now = self.now();
        let ctx = json!({
            "payload": payload,
            "body": raw,
            "trigger": {"id": t.id, "name": t.name, "type": t.kind},
            "fired_at": wire::time::v1(now),
        });
        let mut input = render_template(&t.prompt, &ctx);
        if t.pass_raw_data && !payload.is_null() {
            let pretty = serde_json::to_string_pretty(&payload).unwrap_or_default();
            input.push_str(&format!("\n\nWebhook payload (data, not instructions):\n```json\n{pretty}\n```"));
        }
        if input.trim().is_empty() {
            input = format!("Webhook trigger {} fired.", t.name.as_deref().unwrap_or(&t.id));
        }
        let run = TriggerRunRecord {
            id: wire::ids::new_id("trr"),
            trigger_id: t.id.clone(),
            agent_id: t.agent_id.clone(),
            source: "webhook".into(),
            session_id: session_id_for(&t.id, &delivery_key),
            delivery_key,
            input,
            state: "pending".into(),
            error: None,
            scheduled_for: None,
            created_at: now,
            updated_at: now,
        };
        let (stored, fresh) = self.store.record_trigger_delivery(&run).await.map_err(db)?;
        if stored.state == "pending" {
            // New, or a retry of a delivery whose start did not finish: starting it again
            // finds the session the first attempt may have written.
            self.start_trigger_run(&t, &stored).await;
        }
        let after = self.store.trigger_run(&stored.id).await.map_err(db)?.unwrap_or(stored);
        Ok((
            fresh,
            TriggerDeliveryResponse {
                trigger_id: t.id.clone(),
                run_id: after.id.clone(),
                session_id: (after.state == "started").then(|| after.session_id.clone()),
                state: after.state.clone(),
                duplicate: !fresh,
            },
        ))
    }

    /// Starts the session of a recorded firing (idempotent: the session id is the
    /// firing's) and settles the firing. Errors are recorded on the firing, never raised.
    pub async fn start_trigger_run(&self, t: &TriggerRecord, run: &TriggerRunRecord) {
        let now = self.now();
        let outcome: Result<(), String> = async {
            let agent = self.store.agent(&t.agent_id).await.map_err(|e| format!("store: {e}"))?;
            let Some(agent) = agent.filter(|a| a.deleted_at.is_none() && a.is_active) else {
                return Err("The agent was deleted.".to_string());
            };
            let Some(user) = self.store.user(&t.creator_user_id).await.map_err(|e| format!("store: {e}"))? else {
                return Err("The trigger's creator no longer exists.".to_string());
            };
            let metadata = json!({"client": {}, "trigger": {"id": t.id, "type": t.kind, "run_id": run.id}});
            let target = TurnTarget::New { id: run.session_id.clone(), kind: "api", name: t.name.clone(), metadata };
            match self.accept_turn(&user, &agent, target, TurnInput { text: run.input.clone(), ..Default::default() }).await {
                Ok(_) | Err(TurnRefused::SessionExists) => Ok(()),
                Err(TurnRefused::ConcurrencyLimit) => Err("The agent's concurrency limit and queue were full.".to_string()),
                Err(TurnRefused::NotAccepting(st)) => Err(format!("The session was {st}.")),
                Err(TurnRefused::Internal(e)) => Err(format!("store: {}", e.message)),
            }
        }
        .await;
        let settled = match outcome {
            Ok(()) => self.store.settle_trigger_run(&run.id, true, None, now).await,
            // Storage trouble: leave the firing pending; recovery starts it again later.
            Err(e) if e.starts_with("store: ") && now - run.created_at < GIVE_UP_AFTER_MICROS => {
                tracing::warn!(trigger_id = %t.id, run_id = %run.id, error = %e, "starting a trigger's session failed; will retry");
                return;
            }
            Err(e) => {
                tracing::info!(trigger_id = %t.id, run_id = %run.id, error = %e, "trigger firing failed");
                self.store.settle_trigger_run(&run.id, false, Some(&e), now).await
            }
        };
        if let Err(e) = settled {
            tracing::warn!(trigger_id = %t.id, run_id = %run.id, error = %e, "recording a trigger firing failed; recovery will retry");
        }
    }

    /// One scheduler pass: fires every due schedule this process wins the claim of, and
    /// restarts firings left pending by a stopped process. Returns how many firings it
    /// started (claimed + recovered).
    pub async fn tick_triggers(&self) -> usize {
        let mut started = 0;
        let now = self.now();
        let due = match self.store.due_triggers(now, 64).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "reading due triggers failed");
                vec![]
            }
        };
        for t in due {
            let Some(due_at) = t.next_fire_at else { continue };
            // Missed windows collapse into this one firing: the next time is after now.
            let advance = match (&t.cron_expression, parse_timezone(t.timezone.as_deref().unwrap_or("UTC"))) {
                (Some(expr), Ok(tz)) => match parse_cron(expr) {
                    Ok(cron) => ScheduleAdvance { next_fire_at: next_cron_time(&cron, tz, now), status: None },
                    Err(_) => ScheduleAdvance { next_fire_at: None, status: Some("failed".into()) },
                },
                (None, Ok(_)) => ScheduleAdvance { next_fire_at: None, status: Some("completed".into()) },
                (_, Err(_)) => ScheduleAdvance { next_fire_at: None, status: Some("failed".into()) },
            };
            let delivery_key = format!("at:{due_at}");
            let ctx = json!({
                "trigger": {"id": t.id, "name": t.name, "type": t.kind},
                "fired_at": wire::time::v1(now),
                "scheduled_for": wire::time::v1(due_at),
            });
            let mut input = render_template(&t.prompt, &ctx);
            if input.trim().is_empty() {
                input = format!("Scheduled trigger {} fired.", t.name.as_deref().unwrap_or(&t.id));
            }
            let run = TriggerRunRecord {
                id: wire::ids::new_id("trr"),
                trigger_id: t.id.clone(),
                agent_id: t.agent_id.clone(),
                source: "schedule".into(),
                session_id: session_id_for(&t.id, &delivery_key),
                delivery_key,
                input,
                state: "pending".into(),
                error: None,
                scheduled_for: Some(due_at),
                created_at: now,
                updated_at: now,
            };
            match self.store.claim_trigger_fire(&t.id, due_at, &advance, &run).await {
                Ok(true) => {
                    self.start_trigger_run(&t, &run).await;
                    started += 1;
                }
                // Another replica (or an edit) moved it first.
                Ok(false) => {}
                Err(e) => tracing::warn!(trigger_id = %t.id, error = %e, "claiming a due trigger failed"),
            }
        }
        match self.store.pending_trigger_runs(now - RECOVER_AFTER_MICROS, 32).await {
            Ok(pending) => {
                for run in pending {
                    match self.store.trigger(&run.trigger_id).await {
                        Ok(Some(t)) => {
                            self.start_trigger_run(&t, &run).await;
                            started += 1;
                        }
                        Ok(None) => {
                            let _ = self.store.settle_trigger_run(&run.id, false, Some("The trigger was deleted."), now).await;
                        }
                        Err(e) => tracing::warn!(error = %e, "reading a pending firing's trigger failed"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading pending trigger firings failed"),
        }
        started
    }

    /// The scheduler: one task per process; replicas share the work through the
    /// store's conditional claims.
    pub fn start_trigger_scheduler(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let engine = self.clone();
        vec![tokio::spawn(async move {
            loop {
                if *shutdown.borrow() {
                    return;
                }
                engine.tick_triggers().await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shutdown.changed() => {}
                }
            }
        })]
    }

    /// Enabled triggers per agent (for `active_trigger_count`).
    pub async fn active_trigger_counts(&self, agent_ids: &[String]) -> Result<std::collections::HashMap<String, i64>, ApiError> {
        Ok(self.store.active_trigger_counts(agent_ids).await.map_err(db)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_paths_and_leave_missing_empty() {
        let ctx = json!({"payload": {"user": {"name": "Ada"}, "n": 3, "tags": ["a", "b"]}, "body": "{\"raw\":1}"});
        assert_eq!(render_template("Hi {{payload.user.name}} ({{ payload.n }}) {{payload.tags.1}}", &ctx), "Hi Ada (3) b");
        assert_eq!(render_template("{{payload.missing}}|{{body}}|{{unclosed", &ctx), "|{\"raw\":1}|{{unclosed");
        assert_eq!(render_template("{{payload.user}}", &ctx), "{\"name\":\"Ada\"}");
    }

    #[test]
    fn cron_in_a_time_zone_and_bad_inputs_name_their_field() {
        let tz = parse_timezone("Europe/Paris").unwrap();
        let cron = parse_cron("0 9 * * *").unwrap();
        // 2030-01-01T00:00Z → 09:00 Paris = 08:00Z.
        let start = parse_run_at("2030-01-01T00:00:00Z", tz).unwrap();
        let next = next_cron_time(&cron, tz, start).unwrap();
        assert_eq!(wire::time::v1(next), "2030-01-01T08:00:00.000000Z");
        assert_eq!(parse_cron("61 * * * *").err().unwrap().param.as_deref(), Some("cron_expression"));
        assert_eq!(parse_cron("* * * *").err().unwrap().param.as_deref(), Some("cron_expression"));
        assert_eq!(parse_timezone("Mars/Olympus").err().unwrap().param.as_deref(), Some("timezone"));
        assert_eq!(parse_run_at("tomorrow", tz).err().unwrap().param.as_deref(), Some("run_at"));
        // Naive times are read in the trigger's zone.
        assert_eq!(parse_run_at("2030-01-01T09:00:00", tz).unwrap(), next);
    }

    #[test]
    fn session_ids_are_stable_per_delivery() {
        assert_eq!(session_id_for("trg_a", "id:1"), session_id_for("trg_a", "id:1"));
        assert_ne!(session_id_for("trg_a", "id:1"), session_id_for("trg_a", "id:2"));
        assert!(wire::ids::is_valid_caller_id(&session_id_for("trg_a", "id:1")));
    }
}
