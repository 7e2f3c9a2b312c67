//! SK1–SK7, SY1–SY2, G10 (G11 is SK1 with `agent_id`), and the credential-less signed
//! skill download under `/files/v1/skills/…` (a streamed ZIP of one version's files).

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use bytes::{Bytes, BytesMut};
use engine::skills::SkillUpload;
use futures::StreamExt;
use wire::sessions::AccessChangeRequest;
use wire::skills::{AgentSkillsRequest, CliSyncRequest, CLI_VERSION_HEADER, SYNC_MANIFEST_FILENAME, ZIP_MEDIA_TYPE};
use wire::ApiError;

use crate::error::{Nested, V1Result};
use crate::extract::{self, AuthedKey, V1};
use crate::routes::artifacts::{check_signed_request, not_modified, peer_ip};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/skills", get(list).post(create))
        .route("/skills/{skill_id}", patch(update).delete(delete))
        .route("/skills/{skill_id}/download", get(download))
        .route("/skills/{skill_id}/access", get(get_access).put(put_access))
        .route("/skills/sync/plan", post(sync_plan))
        .route("/skills/sync/download", post(sync_download))
        .route("/agents/{agent_id}/skills", patch(agent_skills))
}

/// Routes outside `/api/v1`: no credentials read.
pub fn file_routes() -> Router<AppState> {
    Router::new().route("/files/v1/skills/{skill_id}/versions/{version_id}/{filename}", get(file).head(file))
}

async fn list(State(st): State<AppState>, v1: V1) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.list_skills(&v1.caller, &v1.query).await?))
}

fn multipart_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_request("files", format!("The body must be multipart/form-data with one files part per file: {e}."))
}

/// Reads the parts of an SK2/SK3 body: `files` parts are checked and stored one at a
/// time (a part over the size limit is refused while it streams); `team_id` is returned.
async fn read_parts(st: &AppState, mp: &mut Multipart, up: &mut SkillUpload) -> Result<Option<String>, ApiError> {
    let limit = st.engine.skill_file_limit();
    let mut team_id = None;
    while let Some(mut field) = mp.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("files") => {
                let name = field.file_name().map(str::to_string).ok_or_else(|| ApiError::invalid_request("files", "Each files part needs a filename."))?;
                let media_type = field.content_type().map(str::to_string);
                let mut buf = BytesMut::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if (buf.len() + chunk.len()) as u64 > limit {
                        return Err(engine::skills::file_too_large(&name, limit));
                    }
                    buf.extend_from_slice(&chunk);
                }
                st.engine.stage_skill_file(up, &name, media_type.as_deref(), buf.freeze()).await?;
            }
            Some("team_id") => {
                let mut buf = BytesMut::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    buf.extend_from_slice(&chunk);
                    if buf.len() > 256 {
                        return Err(ApiError::invalid_request("team_id", "team_id is too long."));
                    }
                }
                let t = String::from_utf8(buf.to_vec()).map_err(|_| ApiError::invalid_request("team_id", "team_id must be UTF-8 text."))?;
                team_id = Some(t.trim().to_string()).filter(|t| !t.is_empty());
            }
            // Other fields are ignored (§1.3); their bytes are skipped by the parser.
            _ => {}
        }
    }
    Ok(team_id)
}

/// The upload of an SK2/SK3 request; the stored files are removed on any error.
async fn upload(st: &AppState, req: Request) -> Result<(SkillUpload, Option<String>), ApiError> {
    let mut mp = Multipart::from_request(req, st).await.map_err(multipart_error)?;
    let mut up = SkillUpload::default();
    match read_parts(st, &mut mp, &mut up).await {
        Ok(team) => Ok((up, team)),
        Err(e) => {
            st.engine.discard_skill_upload(up).await;
            Err(e)
        }
    }
}

async fn create(State(st): State<AppState>, v1: V1, req: Request) -> V1Result<Response> {
    let key = req.extensions().get::<AuthedKey>().cloned();
    let acting = req.headers().get("x-auth-key").and_then(|v| v.to_str().ok()).map(str::to_string).or_else(|| v1.query.str("user_id").map(str::to_string));
    let (up, team) = upload(&st, req).await?;
    // The create workspace is the form's team_id when sent (the SDK reads it from there).
    let caller = match (team, key) {
        (Some(t), Some(AuthedKey(key))) if v1.caller.scope_team() != Some(t.as_str()) => {
            match st.engine.resolve_caller(&key, acting.as_deref(), Some(&t)).await {
                Ok(c) => c,
                Err(e) => {
                    st.engine.discard_skill_upload(up).await;
                    return Err(Nested(e.param("team_id")));
                }
            }
        }
        _ => v1.caller,
    };
    Ok((StatusCode::CREATED, Json(st.engine.create_skill(&caller, up).await?)).into_response())
}

async fn update(State(st): State<AppState>, v1: V1, Path(id): Path<String>, req: Request) -> V1Result<Json<impl serde::Serialize>> {
    // Rights first: nothing is stored for a skill the caller may not change.
    st.engine.editable_skill(&v1.caller, &id).await?;
    let (up, _) = upload(&st, req).await?;
    Ok(Json(st.engine.update_skill(&v1.caller, &id, up).await?))
}

async fn download(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.skill_download(&v1.caller, &id, &v1.query).await?))
}

async fn delete(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.delete_skill(&v1.caller, &id).await?))
}

async fn get_access(State(st): State<AppState>, v1: V1, Path(id): Path<String>) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.skill_access(&v1.caller, &id).await?))
}

async fn put_access(
    State(st): State<AppState>,
    v1: V1,
    Path(id): Path<String>,
    extract::Body(req): extract::Body<AccessChangeRequest>,
) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.change_skill_access(&v1.caller, &id, &req).await?))
}

async fn agent_skills(
    State(st): State<AppState>,
    v1: V1,
    Path(id): Path<String>,
    extract::Body(req): extract::Body<AgentSkillsRequest>,
) -> V1Result<Json<impl serde::Serialize>> {
    Ok(Json(st.engine.update_agent_skills(&v1.caller, &id, req).await?))
}

fn require_cli_version(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get(CLI_VERSION_HEADER).and_then(|v| v.to_str().ok()).map(str::trim) {
        Some(v) if !v.is_empty() => Ok(()),
        _ => Err(ApiError::invalid_request(CLI_VERSION_HEADER, format!("Send the {CLI_VERSION_HEADER} header (the gumloop CLI version)."))),
    }
}

async fn sync_plan(
    State(st): State<AppState>,
    v1: V1,
    headers: HeaderMap,
    extract::Body(req): extract::Body<CliSyncRequest>,
) -> V1Result<Json<impl serde::Serialize>> {
    require_cli_version(&headers)?;
    Ok(Json(st.engine.sync_plan(&v1.caller, &req).await?))
}

/// A ZIP streamed from `(name, blob key)` entries after `first` (in-memory) entries.
fn zip_body(st: &AppState, first: Vec<(String, Bytes)>, entries: Vec<(String, String)>) -> Result<Body, ApiError> {
    let blobs = st.engine.blobs.clone().ok_or_else(ApiError::internal)?;
    let head = futures::stream::iter(first)
        .map(|(name, bytes)| Ok::<crate::zip::Entry, std::io::Error>((name, futures::stream::once(async move { Ok(bytes) }).boxed())));
    // Entries open their blob lazily, one at a time.
    let rest = futures::stream::iter(entries).then(move |(name, key)| {
        let blobs = blobs.clone();
        async move {
            let read = blobs.get(&key, None).await.map_err(|_| std::io::Error::other("a skill file disappeared while zipping"))?;
            let data = read.stream.map(|c| c.map_err(|e| std::io::Error::other(e.to_string()))).boxed();
            Ok::<crate::zip::Entry, std::io::Error>((name, data))
        }
    });
    Ok(Body::from_stream(crate::zip::archive(head.chain(rest))))
}

async fn sync_download(State(st): State<AppState>, v1: V1, headers: HeaderMap, extract::Body(req): extract::Body<CliSyncRequest>) -> V1Result<Response> {
    require_cli_version(&headers)?;
    let bundle = st.engine.sync_bundle(&v1.caller, &req).await?;
    let body = zip_body(&st, vec![(SYNC_MANIFEST_FILENAME.to_string(), Bytes::from(bundle.manifest_json))], bundle.entries)?;
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ZIP_MEDIA_TYPE));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"gumloop-skills.zip\""));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// Step 2 of SK4: the version's files as a ZIP (streamed; no `Content-Length`, no ranges).
async fn file(State(st): State<AppState>, Path((skill_id, version_id, filename)): Path<(String, String, String)>, req: Request) -> Response {
    let exp = match check_signed_request(&st, peer_ip(&req), req.uri()).await {
        Ok(exp) => exp,
        Err(r) => return r,
    };
    let (ver, files) = match st.engine.skill_version_for_download(&skill_id, &version_id).await {
        Ok(v) => v,
        Err(e) => return Nested(e).into_response(),
    };
    // A version never changes: its id is a strong validator.
    let etag = format!("\"{}\"", ver.id);
    if let Some(r) = not_modified(req.headers(), &etag) {
        return r;
    }
    let body = if req.method() == Method::HEAD {
        Body::empty()
    } else {
        match zip_body(&st, vec![], files.into_iter().map(|f| (f.path, f.blob_key)).collect()) {
            Ok(b) => b,
            Err(e) => return Nested(e).into_response(),
        }
    };
    let mut r = Response::new(body);
    let h = r.headers_mut();
    let mut set = |k: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(header::CONTENT_TYPE, ZIP_MEDIA_TYPE.into());
    set(header::ETAG, etag);
    set(header::CONTENT_DISPOSITION, engine::artifacts::content_disposition(&filename));
    let max_age = (exp - chrono::Utc::now().timestamp()).max(0);
    set(header::CACHE_CONTROL, format!("private, max-age={max_age}"));
    set(header::REFERRER_POLICY, "no-referrer".into());
    r
}
