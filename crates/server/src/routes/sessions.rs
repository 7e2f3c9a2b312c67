//! S1–S16: sessions, their messages, queue, files and approvals; S2/S5/S8 answer
//! Server-Sent Events from the session's event log (§12).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Extension, Json, Router};
use futures::StreamExt;
use serde_json::Value;
use store::EventRecord;
use wire::events::StreamFrame;
use wire::sessions::{
    AccessChangeRequest, Delivery, QueueMessageRequest, SessionApprovalsRequest, SessionCreateRequest, SessionFileRequest, SessionMessageReceipt,
    SessionMessageRequest, SessionRenameRequest, SessionResponse,
};
use wire::ApiError;

use crate::error::{Nested, V1Result};
use crate::extract::{read_json, Body, JsonBody, V1};
use crate::idempotency::IdemRequest;
use crate::routes::tools::ViaTool;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/agents/{agent_id}/sessions", get(list).post(create))
        .route("/sessions/{session_id}", get(retrieve).patch(rename))
        .route("/sessions/{session_id}/messages", post(send))
        .route("/sessions/{session_id}/cancel", post(cancel))
        .route("/sessions/{session_id}/files", post(upload))
        .route("/sessions/{session_id}/approvals", post(approvals))
        .route("/sessions/{session_id}/queue", get(list_queue).post(queue_message))
        .route("/sessions/{session_id}/queue/{queued_message_id}", patch(edit_queued).delete(delete_queued))
        .route("/sessions/{session_id}/queue/{queued_message_id}/send", post(send_queued))
        .route("/sessions/{session_id}/access", get(get_access).put(put_access))
}

fn sse_event(e: &EventRecord) -> Event {
    let mut d = e.data.clone();
    if let Some(o) = d.as_object_mut() {
        o.insert("stream_cursor".into(), Value::String(format!("{}:{}", e.session_id, e.seq)));
    }
    Event::default().event(e.kind.clone()).data(d.to_string())
}

fn sse_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

fn keep_alive(secs: u64) -> KeepAlive {
    KeepAlive::new().interval(Duration::from_secs(secs.max(1))).text("keep-alive")
}

/// Streams the session's events after `after` until the first final event.
fn follow(eng: &std::sync::Arc<engine::Engine>, keepalive_secs: u64, session_id: &str, after: i64, rx: engine::runtime::bus::Subscription) -> Response {
    let (tx, out) = futures::channel::mpsc::channel::<EventRecord>(256);
    tokio::spawn(engine::sessions::stream::follow(eng.clone(), session_id.to_string(), after, rx, tx));
    let reader = crate::metrics::SseReader::open();
    let stream = out.map(move |e| {
        let _open = &reader;
        Ok::<_, Infallible>(sse_event(&e))
    });
    sse_headers(Sse::new(stream).keep_alive(keep_alive(keepalive_secs)).into_response())
}

/// A stream of one synthetic event (not persisted).
fn single(frame: StreamFrame) -> Response {
    let data = serde_json::to_string(&frame).unwrap_or_default();
    let ev = Event::default().event(frame.event.kind()).data(data);
    sse_headers(Sse::new(futures::stream::once(async move { Ok::<_, Infallible>(ev) })).into_response())
}

async fn list(State(st): State<AppState>, v1: V1, Path(agent_id): Path<String>) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.list_sessions(&v1.caller, &agent_id, &v1.query).await?))
}

async fn create(
    State(st): State<AppState>,
    v1: V1,
    Path(agent_id): Path<String>,
    via_tool: Option<Extension<ViaTool>>,
    headers: HeaderMap,
    uri: Uri,
    JsonBody(body): JsonBody,
) -> Response {
    let kind = if via_tool.is_some() { "tool" } else { "api" };
    let req: SessionCreateRequest = match wire::request::parse(body.clone()) {
        Ok(r) => r,
        Err(e) => return Nested(e).into_response(),
    };
    // Incognito sessions (asked for, or enforced by the agent) live in memory only.
    let wants_incognito =
        req.incognito == Some(true) || (st.incognito.is_some() && st.engine.visible_agent(&v1.caller, &agent_id).await.is_ok_and(|a| a.config.incognito));
    let eng = match (&st.incognito, wants_incognito) {
        (Some(inc), true) => inc.clone(),
        _ => st.engine.clone(),
    };
    if req.stream == Some(true) {
        let rx = eng.bus.subscribe();
        let key_id = v1.caller.key.id.clone();
        let idem = IdemRequest { headers: &headers, key_id: &key_id, route: "S2", path_ids: &agent_id, body: &body, raw_query: uri.query(), legacy: false };
        if let Err(e) = crate::idempotency::claim_for_stream(&st, idem).await {
            return Nested(e).into_response();
        }
        return match eng.create_session(&v1.caller, &agent_id, req, kind, true).await {
            Ok(c) => follow(&eng, st.config.keepalive_secs, &c.session_id, 0, rx),
            Err(e) => Nested(e).into_response(),
        };
    }
    let key_id = v1.caller.key.id.clone();
    let engine = eng.clone();
    let fingerprint_body = body.clone();
    let path_ids = agent_id.clone();
    let idem =
        IdemRequest { headers: &headers, key_id: &key_id, route: "S1", path_ids: &path_ids, body: &fingerprint_body, raw_query: uri.query(), legacy: false };
    crate::idempotency::run(&st, idem, || async move {
        match engine.create_session(&v1.caller, &agent_id, req, kind, false).await {
            Ok(c) => (StatusCode::from_u16(c.status).unwrap_or(StatusCode::OK), Json(c.body)).into_response(),
            Err(e) => Nested(e).into_response(),
        }
    })
    .await
}

async fn retrieve(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> Response {
    let eng = st.engine_for_session(&id).await;
    let stream = match v1.query.bool("stream") {
        Ok(s) => s.unwrap_or(false),
        Err(e) => return Nested(e).into_response(),
    };
    let rx = eng.bus.subscribe();
    let s = match eng.session_for(&v1.caller, &id).await {
        Ok(s) => s,
        Err(e) => return Nested(e).into_response(),
    };
    if !stream {
        return match eng.session_response(&s, true).await {
            Ok(v) => Json(v).into_response(),
            Err(e) => Nested(e).into_response(),
        };
    }
    match eng.resume_point(&s, v1.query.raw("last_cursor")).await {
        Ok(Ok(after)) => follow(&eng, st.config.keepalive_secs, &s.id, after, rx),
        Ok(Err(synthetic)) => single(synthetic),
        Err(e) => Nested(e).into_response(),
    }
}

async fn rename(State(st): State<AppState>, v1: V1, Path(id): Path<String>, Body(req): Body<SessionRenameRequest>) -> V1Result<Json<SessionResponse>> {
    let eng = st.engine_for_session(&id).await;
    Ok(Json(eng.rename_session(&v1.caller, &id, req).await?))
}

async fn send(State(st): State<AppState>, v1: V1, Path(id): Path<String>, headers: HeaderMap, uri: Uri, JsonBody(body): JsonBody) -> Response {
    let eng = st.engine_for_session(&id).await;
    let req: SessionMessageRequest = match wire::request::parse(body.clone()) {
        Ok(r) => r,
        Err(e) => return Nested(e).into_response(),
    };
    let delivery = req.delivery.unwrap_or_default();
    let has_approvals = req.approval_responses.is_some();
    if req.stream == Some(true) {
        if delivery == Delivery::Queued {
            return Nested(ApiError::invalid_request("stream", "Queued delivery cannot stream; resume the session's stream (S5) instead.")).into_response();
        }
        let rx = eng.bus.subscribe();
        let key_id = v1.caller.key.id.clone();
        let idem = IdemRequest { headers: &headers, key_id: &key_id, route: "S8", path_ids: &id, body: &body, raw_query: uri.query(), legacy: false };
        if let Err(e) = crate::idempotency::claim_for_stream(&st, idem).await {
            return Nested(e).into_response();
        }
        if let (Some(items), None, None) = (&req.approval_responses, &req.input, &req.message) {
            return match eng.resolve_approvals(&v1.caller, &id, items).await {
                Ok((_, cursor)) => follow(&eng, st.config.keepalive_secs, &id, cursor, rx),
                Err(e) => Nested(e).into_response(),
            };
        }
        let before = match eng.session_for(&v1.caller, &id).await {
            Ok(s) => s.last_seq,
            Err(e) => return Nested(e).into_response(),
        };
        return match eng.send_message(&v1.caller, &id, &req).await {
            Ok(_) => follow(&eng, st.config.keepalive_secs, &id, before, rx),
            Err(e) => Nested(e).into_response(),
        };
    }
    if has_approvals {
        return Nested(
            ApiError::new(wire::ErrorCode::ApprovalResponsesNotSupported, "approval_responses need stream: true here; use POST /sessions/{id}/approvals.")
                .param("approval_responses"),
        )
        .into_response();
    }
    if delivery == Delivery::Queued {
        let key_id = v1.caller.key.id.clone();
        let engine = eng.clone();
        let idem = IdemRequest { headers: &headers, key_id: &key_id, route: "S7", path_ids: &id, body: &body, raw_query: uri.query(), legacy: false };
        let caller = v1.caller.clone();
        let sid = id.clone();
        return crate::idempotency::run(&st, idem, || async move {
            match engine.queue_message(&caller, &sid, (req.input.as_ref(), req.message.as_ref()), req.attachments.as_ref()).await {
                Ok((q, _)) => (StatusCode::ACCEPTED, Json(SessionMessageReceipt { message_id: q.id, status: "accepted".into() })).into_response(),
                Err(e) => Nested(e).into_response(),
            }
        })
        .await;
    }
    let key_id = v1.caller.key.id.clone();
    let path_ids = id.clone();
    let idem = IdemRequest { headers: &headers, key_id: &key_id, route: "S7", path_ids: &path_ids, body: &body, raw_query: uri.query(), legacy: false };
    crate::idempotency::run(&st, idem, || async move {
        match eng.send_message(&v1.caller, &id, &req).await {
            Ok((v, _)) => (StatusCode::ACCEPTED, Json(v)).into_response(),
            Err(e) => Nested(e).into_response(),
        }
    })
    .await
}

async fn cancel(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<impl serde::Serialize>> {
    let eng = st.engine_for_session(&id).await;
    Ok(Json(eng.cancel_session(&v1.caller, &id).await?))
}

async fn upload(State(st): State<AppState>, v1: V1, Path(id): Path<String>, req: Request) -> Response {
    let eng = st.engine_for_session(&id).await;
    let max = st.config.max_upload_bytes;
    let body_limit = (max as usize).saturating_mul(4) / 3 + 64 * 1024;
    let (parts, body) = req.into_parts();
    let req: SessionFileRequest = match read_json(&parts.headers, body, body_limit, true).await.and_then(wire::request::parse) {
        Ok(r) => r,
        Err(e) => return Nested(e).into_response(),
    };
    match eng.upload_session_file(&v1.caller, &id, req, max).await {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => Nested(e).into_response(),
    }
}

async fn approvals(
    State(st): State<AppState>,
    v1: V1,
    Path(id): Path<String>,
    Body(req): Body<SessionApprovalsRequest>,
) -> V1Result<Json<impl serde::Serialize>> {
    let eng = st.engine_for_session(&id).await;
    Ok(Json(eng.resolve_approvals(&v1.caller, &id, &req.approval_responses).await?.0))
}

async fn list_queue(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<impl serde::Serialize>> {
    let eng = st.engine_for_session(&id).await;
    Ok(Json(eng.list_queue(&v1.caller, &id).await?))
}

async fn queue_message(State(st): State<AppState>, v1: V1, Path(id): Path<String>, headers: HeaderMap, uri: Uri, JsonBody(body): JsonBody) -> Response {
    let eng = st.engine_for_session(&id).await;
    let req: QueueMessageRequest = match wire::request::parse(body.clone()) {
        Ok(r) => r,
        Err(e) => return Nested(e).into_response(),
    };
    let key_id = v1.caller.key.id.clone();
    let path_ids = id.clone();
    let idem = IdemRequest { headers: &headers, key_id: &key_id, route: "S13", path_ids: &path_ids, body: &body, raw_query: uri.query(), legacy: false };
    crate::idempotency::run(&st, idem, || async move {
        match eng.queue_message_response(&v1.caller, &id, req).await {
            Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
            Err(e) => Nested(e).into_response(),
        }
    })
    .await
}

async fn edit_queued(
    State(st): State<AppState>,
    v1: V1,
    Path((id, qid)): Path<(String, String)>,
    Body(req): Body<QueueMessageRequest>,
) -> V1Result<Json<impl serde::Serialize>> {
    let eng = st.engine_for_session(&id).await;
    Ok(Json(eng.edit_queued(&v1.caller, &id, &qid, req).await?))
}

async fn delete_queued(State(st): State<AppState>, v1: V1, Path((id, qid)): Path<(String, String)>) -> V1Result<Json<impl serde::Serialize>> {
    let eng = st.engine_for_session(&id).await;
    Ok(Json(eng.delete_queued(&v1.caller, &id, &qid).await?))
}

async fn send_queued(
    State(st): State<AppState>,
    v1: V1,
    Path((id, qid)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    JsonBody(body): JsonBody,
) -> Response {
    let eng = st.engine_for_session(&id).await;
    let key_id = v1.caller.key.id.clone();
    let path_ids = format!("{id}/{qid}");
    let idem = IdemRequest { headers: &headers, key_id: &key_id, route: "S16", path_ids: &path_ids, body: &body, raw_query: uri.query(), legacy: false };
    crate::idempotency::run(&st, idem, || async move {
        match eng.send_queued_now(&v1.caller, &id, &qid).await {
            Ok((v, _)) => (StatusCode::ACCEPTED, Json(v)).into_response(),
            Err(e) => Nested(e).into_response(),
        }
    })
    .await
}

async fn get_access(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<impl serde::Serialize>> {
    let eng = st.engine_for_session(&id).await;
    Ok(Json(eng.session_access(&v1.caller, &id).await?))
}

async fn put_access(State(st): State<AppState>, v1: V1, Path(id): Path<String>, Body(req): Body<AccessChangeRequest>) -> V1Result<Json<impl serde::Serialize>> {
    let eng = st.engine_for_session(&id).await;
    Ok(Json(eng.change_session_access(&v1.caller, &id, &req).await?))
}
