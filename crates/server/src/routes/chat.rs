//! C1/C2 `POST /chat/completions` (unary JSON, or Server-Sent Events whose `data` are
//! `ChatStreamChunk` JSON ending with `data: [DONE]`) and M2 `POST /models/route`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use wire::chat::{ChatCompletionRequest, ModelRouteRequest, ModelRouteResponse};

use crate::error::{Nested, V1Result};
use crate::extract::{Body, V1};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/chat/completions", post(completions)).route("/models/route", post(route_model))
}

async fn completions(State(st): State<AppState>, v1: V1, Body(req): Body<ChatCompletionRequest>) -> Response {
    let call = match st.engine.prepare_chat(&v1.caller, req).await {
        Ok(c) => c,
        Err(e) => return Nested(e).into_response(),
    };
    if !call.stream {
        return match st.engine.chat_complete(call).await {
            Ok(done) => Json(done).into_response(),
            Err(e) => Nested(e).into_response(),
        };
    }
    let chunks = match st.engine.chat_stream(call).await {
        Ok(s) => s,
        Err(e) => return Nested(e).into_response(),
    };
    let reader = crate::metrics::SseReader::open();
    let events = chunks
        .map(|c| Event::default().data(serde_json::to_string(&c).unwrap_or_default()))
        .chain(futures::stream::once(async { Event::default().data("[DONE]") }))
        .map(move |e| {
            let _open = &reader;
            Ok::<_, Infallible>(e)
        });
    let keep_alive = KeepAlive::new().interval(Duration::from_secs(st.config.keepalive_secs.max(1))).text("keep-alive");
    let mut resp = Sse::new(events).keep_alive(keep_alive).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-transform"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

async fn route_model(State(st): State<AppState>, v1: V1, Body(req): Body<ModelRouteRequest>) -> V1Result<Json<ModelRouteResponse>> {
    Ok(Json(st.engine.route_model(&v1.caller, req).await?))
}
