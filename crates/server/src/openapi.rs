//! The OpenAPI 3.1 document (API.md §9.4), generated from the route table and the
//! `wire` types' schema derives. `docs/openapi.json` is this document for the default
//! public URL; a test fails when the two drift apart.

use std::sync::OnceLock;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, Parameter, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, Content, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, Schema, Server, ServerBuilder,
};
use utoipa::{IntoParams, ToSchema};

use crate::routes::table::{Status, ROUTES};
use crate::AppState;

/// The public URL `docs/openapi.json` is generated for.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8765";

fn collect<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
    out.push((T::name().to_string(), T::schema()));
    T::schemas(out);
}

fn schemas() -> Vec<(String, RefOr<Schema>)> {
    use wire::agents::*;
    use wire::artifacts::*;
    use wire::error::{ErrorEnvelope, FlatError, OAuthError};
    use wire::events::StreamFrame;
    use wire::legacy::*;
    use wire::sessions::*;
    use wire::tenancy::*;
    use wire::tools::ToolListResponse;
    let mut out = Vec::new();
    collect::<AgentResponse>(&mut out);
    for (name, schema) in trigger_schemas() {
        out.push((name, schema));
    }
    collect::<AgentListResponse>(&mut out);
    collect::<AgentCreateRequest>(&mut out);
    collect::<AgentUpdateRequest>(&mut out);
    collect::<AgentDeleteResponse>(&mut out);
    collect::<AgentAbilitiesRequest>(&mut out);
    collect::<AgentAbilitiesResponse>(&mut out);
    collect::<AgentIncognitoRequest>(&mut out);
    collect::<AgentVersionsResponse>(&mut out);
    collect::<AgentVersionResponse>(&mut out);
    collect::<SessionCreateRequest>(&mut out);
    collect::<SessionResponse>(&mut out);
    collect::<SessionListResponse>(&mut out);
    collect::<SessionRenameRequest>(&mut out);
    collect::<SessionMessageRequest>(&mut out);
    collect::<SessionMessageReceipt>(&mut out);
    collect::<SessionFileRequest>(&mut out);
    collect::<SessionFileResponse>(&mut out);
    collect::<SessionApprovalsRequest>(&mut out);
    collect::<SessionApprovalsResponse>(&mut out);
    collect::<QueueMessageRequest>(&mut out);
    collect::<SessionQueueResponse>(&mut out);
    collect::<SessionQueuedMessageResponse>(&mut out);
    collect::<AccessChangeRequest>(&mut out);
    collect::<ItemAccessResponse>(&mut out);
    collect::<ItemAccessChangeResponse>(&mut out);
    collect::<StreamFrame>(&mut out);
    collect::<ArtifactListResponse>(&mut out);
    collect::<ArtifactDownloadResponse>(&mut out);
    collect::<ArtifactDeleteResponse>(&mut out);
    collect::<ArtifactRenameRequest>(&mut out);
    collect::<ArtifactNameResponse>(&mut out);
    collect::<ArtifactVersionsResponse>(&mut out);
    collect::<ArtifactPasswordRequest>(&mut out);
    collect::<SuccessResponse>(&mut out);
    collect::<StartAgentRequest>(&mut out);
    collect::<StartAgentResponse>(&mut out);
    collect::<AgentStatusResponse>(&mut out);
    collect::<StartPipelineRequest>(&mut out);
    collect::<StartPipelineResponse>(&mut out);
    collect::<FlowRun>(&mut out);
    collect::<SavedItemsResponse>(&mut out);
    collect::<KillPipelineResponse>(&mut out);
    collect::<WorkbooksResponse>(&mut out);
    collect::<FlowInputsResponse>(&mut out);
    collect::<FlowRunSummary>(&mut out);
    collect::<wire::flows::FlowSaveRequest>(&mut out);
    collect::<wire::flows::FlowDetail>(&mut out);
    collect::<wire::flows::FlowListResponse>(&mut out);
    collect::<wire::flows::FlowValidateResponse>(&mut out);
    collect::<wire::flows::FlowVersionsResponse>(&mut out);
    collect::<wire::flows::FlowDeleteResponse>(&mut out);
    collect::<wire::flows::WorkbookCreateRequest>(&mut out);
    collect::<wire::flows::WorkbookView>(&mut out);
    collect::<wire::flows::WorkbookListResponse>(&mut out);
    collect::<wire::flows::NodeKindsResponse>(&mut out);
    collect::<UploadFileRequest>(&mut out);
    collect::<UploadFileResponse>(&mut out);
    collect::<UploadFilesRequest>(&mut out);
    collect::<UploadFilesResponse>(&mut out);
    collect::<DownloadFileRequest>(&mut out);
    collect::<DownloadFilesRequest>(&mut out);
    collect::<ExportDataRequest>(&mut out);
    collect::<ExportDataResponse>(&mut out);
    collect::<DataExport>(&mut out);
    collect::<TeamsResponse>(&mut out);
    collect::<OrganizationsResponse>(&mut out);
    collect::<ApiKeyCreateRequest>(&mut out);
    collect::<ApiKeyCreatedResponse>(&mut out);
    collect::<ApiKeyListResponse>(&mut out);
    collect::<ApiKeyView>(&mut out);
    collect::<ModelListResponse>(&mut out);
    collect::<ToolListResponse>(&mut out);
    collect::<wire::chat::ChatCompletionRequest>(&mut out);
    collect::<wire::chat::ChatCompletion>(&mut out);
    collect::<wire::chat::ChatStreamChunk>(&mut out);
    collect::<wire::chat::ModelRouteRequest>(&mut out);
    collect::<wire::chat::ModelRouteResponse>(&mut out);
    collect::<wire::mcp_servers::McpServersResponse>(&mut out);
    collect::<wire::mcp_servers::McpServerResponse>(&mut out);
    collect::<wire::mcp_servers::McpServerAccountsResponse>(&mut out);
    collect::<wire::mcp_servers::McpToolsResponse>(&mut out);
    collect::<wire::mcp_servers::McpResourcesResponse>(&mut out);
    collect::<wire::mcp_servers::McpResourceReadResponse>(&mut out);
    collect::<wire::mcp_servers::McpPromptsResponse>(&mut out);
    collect::<wire::mcp_servers::McpGetPromptRequest>(&mut out);
    collect::<wire::mcp_servers::McpPromptResponse>(&mut out);
    collect::<wire::mcp_servers::McpExecuteRequest>(&mut out);
    collect::<wire::mcp_servers::McpExecuteResponse>(&mut out);
    collect::<wire::mcp_servers::McpServerCreateRequest>(&mut out);
    collect::<wire::mcp_servers::McpServerUpdateRequest>(&mut out);
    collect::<wire::mcp_servers::McpServerDeleteResponse>(&mut out);
    collect::<wire::mcp_servers::AgentMcpServerResponse>(&mut out);
    collect::<wire::mcp_servers::AgentMcpServerDetachResponse>(&mut out);
    collect::<wire::mcp_servers::AgentMcpServersResponse>(&mut out);
    collect::<wire::agents::AgentSubagentsResponse>(&mut out);
    collect::<ErrorEnvelope>(&mut out);
    collect::<FlatError>(&mut out);
    collect::<OAuthError>(&mut out);
    // Enums used by query parameters.
    collect::<AgentSort>(&mut out);
    collect::<SessionSort>(&mut out);
    collect::<SessionKind>(&mut out);
    collect::<ArtifactSort>(&mut out);
    collect::<wire::tools::ToolFormat>(&mut out);
    out
}

/// A response body.
#[derive(Clone, Copy)]
enum Body {
    /// `application/json` of a named component schema.
    Json(&'static str),
    /// `application/json`, one of several component schemas.
    JsonAnyOf(&'static [&'static str]),
    /// Any JSON value.
    AnyJson,
    /// Server-Sent Events (§12): frames are `StreamFrame` JSON.
    Sse,
    /// Server-Sent Events whose `data` are JSON of this component schema, ending with
    /// `data: [DONE]` (C2).
    SseOf(&'static str),
    /// Raw bytes of this media type.
    Bytes(&'static str),
    /// No body.
    Empty,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Errors {
    /// The v1 nested envelope (§3.1).
    Nested,
    /// The legacy flat form (§3.2).
    Flat,
    /// Either: tool invocations answer what the endpoint answers.
    Either,
    /// JSON-RPC or the nested envelope (the MCP endpoint).
    JsonRpc,
    /// RFC 6749 `{error, error_description}` (OAuth).
    OAuth,
}

/// How one operation is documented.
struct OpDoc {
    request: Option<Body>,
    responses: Vec<(u16, &'static str, Vec<Body>)>,
    query: Vec<Parameter>,
    /// Error statuses besides the common ones.
    errors: &'static [u16],
    error_form: Errors,
}

fn ok(status: u16, what: &'static str, body: Body) -> (u16, &'static str, Vec<Body>) {
    (status, what, vec![body])
}

fn q<T: IntoParams>() -> Vec<Parameter> {
    T::into_params(|| Some(ParameterIn::Query))
}

fn string_param(name: &str, location: ParameterIn, required: bool, description: &str) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(location)
        .required(if required { Required::True } else { Required::False })
        .description(Some(description))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build()
}

/// The schemas of G20–G28.
fn trigger_schemas() -> Vec<(String, RefOr<Schema>)> {
    use wire::triggers::*;
    let mut out = Vec::new();
    collect::<TriggerType>(&mut out);
    collect::<TriggerCredentialSelector>(&mut out);
    collect::<IntegrationTriggerConfig>(&mut out);
    collect::<IntegrationTriggerPayload>(&mut out);
    collect::<AgentTriggerCreateRequest>(&mut out);
    collect::<AgentTriggerUpdateRequest>(&mut out);
    collect::<AgentTrigger>(&mut out);
    collect::<AgentTriggerResponse>(&mut out);
    collect::<AgentTriggersResponse>(&mut out);
    collect::<AgentTriggerWebhookUrlResponse>(&mut out);
    collect::<AgentTriggerDeleteResponse>(&mut out);
    collect::<TriggerOperatorParameter>(&mut out);
    collect::<TriggerOperator>(&mut out);
    collect::<TriggerOperatorsResponse>(&mut out);
    collect::<AgentTriggerRun>(&mut out);
    collect::<AgentTriggerRunsResponse>(&mut out);
    collect::<AgentTriggerStatsResponse>(&mut out);
    collect::<TriggerDeliveryResponse>(&mut out);
    collect::<wire::skills::SkillListResponse>(&mut out);
    collect::<wire::skills::SkillResponse>(&mut out);
    collect::<wire::skills::SkillDeleteResponse>(&mut out);
    collect::<wire::skills::SkillDownloadResponse>(&mut out);
    collect::<wire::skills::SkillUploadForm>(&mut out);
    collect::<wire::skills::AgentSkillsRequest>(&mut out);
    collect::<wire::skills::AgentSkillsResponse>(&mut out);
    collect::<wire::skills::CliSyncRequest>(&mut out);
    collect::<wire::skills::CliSyncPlanResponse>(&mut out);
    collect::<wire::skills::CliSyncBundleManifest>(&mut out);
    out
}

/// The per-operation documentation, by spec id.
fn doc(id: &str) -> OpDoc {
    use wire::agents::{AgentListQuery, AgentVersionsQuery};
    use wire::artifacts::{ArtifactDownloadQuery, ArtifactListQuery};
    use wire::legacy::{ExportStatusQuery, FlowRunQuery, LegacyIdentityQuery};
    use wire::sessions::{SessionListQuery, SessionRetrieveQuery};
    use wire::tools::ToolListQuery;
    use Body::*;
    let nested = |request: Option<Body>, responses, query, errors| OpDoc { request, responses, query, errors, error_form: Errors::Nested };
    let flat = |request: Option<Body>, responses, query, errors| OpDoc { request, responses, query, errors, error_form: Errors::Flat };
    let session_resp = "SessionResponse";
    match id {
        "G1" => nested(None, vec![ok(200, "The agents", Json("AgentListResponse"))], q::<AgentListQuery>(), &[]),
        "G2" => nested(Some(Json("AgentCreateRequest")), vec![ok(201, "Created (version 1)", Json("AgentResponse"))], vec![], &[409, 501]),
        "G3" => nested(None, vec![ok(200, "The agent", Json("AgentResponse"))], vec![], &[]),
        "G4" => nested(Some(Json("AgentUpdateRequest")), vec![ok(200, "The updated agent", Json("AgentResponse"))], vec![], &[409]),
        "G5" => nested(None, vec![ok(200, "Deleted", Json("AgentDeleteResponse"))], vec![], &[]),
        "G6" => nested(None, vec![ok(200, "Versions, newest first", Json("AgentVersionsResponse"))], q::<AgentVersionsQuery>(), &[]),
        "G7" => nested(None, vec![ok(200, "The version and its changes", Json("AgentVersionResponse"))], vec![], &[]),
        "G8" => nested(Some(Json("AgentAbilitiesRequest")), vec![ok(200, "The abilities", Json("AgentAbilitiesResponse"))], vec![], &[409]),
        "G9" => nested(Some(Json("AgentIncognitoRequest")), vec![ok(200, "The agent", Json("AgentResponse"))], vec![], &[]),
        "G20" => {
            nested(None, vec![ok(200, "The agent's triggers (no webhook URLs)", Json("AgentTriggersResponse"))], q::<wire::triggers::TriggerListQuery>(), &[])
        }
        "G21" => nested(
            Some(Json("AgentTriggerCreateRequest")),
            vec![ok(201, "Created (a webhook's URL included, once)", Json("AgentTriggerResponse"))],
            vec![],
            &[409],
        ),
        "G22" => nested(None, vec![ok(200, "The trigger", Json("AgentTriggerResponse"))], vec![], &[]),
        "G23" => nested(Some(Json("AgentTriggerUpdateRequest")), vec![ok(200, "The trigger", Json("AgentTriggerResponse"))], vec![], &[409]),
        "G24" => nested(None, vec![ok(200, "Deleted; it fires no more", Json("AgentTriggerDeleteResponse"))], vec![], &[]),
        "G25" => nested(None, vec![ok(200, "The webhook URL (it embeds the secret)", Json("AgentTriggerWebhookUrlResponse"))], vec![], &[]),
        "G26" => nested(None, vec![ok(200, "The trigger kinds this server fires", Json("TriggerOperatorsResponse"))], vec![], &[]),
        "G27" => nested(None, vec![ok(200, "Firings, newest first", Json("AgentTriggerRunsResponse"))], q::<wire::triggers::TriggerRunsQuery>(), &[]),
        "G28" => nested(None, vec![ok(200, "Totals of the trigger's firings", Json("AgentTriggerStatsResponse"))], vec![], &[]),
        "S1" => nested(
            Some(Json("SessionCreateRequest")),
            vec![
                ok(200, "With `stream: true` (S2): the run's events", Sse),
                ok(201, "Created idle (no input)", Json(session_resp)),
                ok(202, "Created; the first message runs (`processing`) or waits (`queued`)", Json(session_resp)),
            ],
            vec![],
            &[409],
        ),
        "S3" => nested(None, vec![ok(200, "Sessions (items without messages)", Json("SessionListResponse"))], q::<SessionListQuery>(), &[]),
        "S4" => nested(
            None,
            vec![(200, "The session with its transcript, or with `stream=true` (S5) its events", vec![Json(session_resp), Sse])],
            q::<SessionRetrieveQuery>(),
            &[],
        ),
        "S6" => nested(Some(Json("SessionRenameRequest")), vec![ok(200, "The renamed session", Json(session_resp))], vec![], &[]),
        "S7" => nested(
            Some(Json("SessionMessageRequest")),
            vec![
                ok(200, "With `stream: true` (S8): the run's events", Sse),
                ok(202, "Accepted: the session (`immediate`) or a receipt (`queued`)", JsonAnyOf(&["SessionResponse", "SessionMessageReceipt"])),
            ],
            vec![],
            &[409],
        ),
        "S9" => nested(None, vec![ok(200, "The session (cancelled when a run was active)", Json(session_resp))], vec![], &[]),
        "S10" => nested(Some(Json("SessionFileRequest")), vec![ok(201, "Stored", Json("SessionFileResponse"))], vec![], &[]),
        "S11" => nested(Some(Json("SessionApprovalsRequest")), vec![ok(200, "Outcomes", Json("SessionApprovalsResponse"))], vec![], &[409]),
        "S12" => nested(None, vec![ok(200, "The queue, in send order", Json("SessionQueueResponse"))], vec![], &[]),
        "S13" => nested(Some(Json("QueueMessageRequest")), vec![ok(201, "Queued", Json("SessionQueuedMessageResponse"))], vec![], &[409]),
        "S14" => nested(Some(Json("QueueMessageRequest")), vec![ok(200, "Edited", Json("SessionQueuedMessageResponse"))], vec![], &[]),
        "S15" => nested(None, vec![ok(200, "The queue, renumbered", Json("SessionQueueResponse"))], vec![], &[]),
        "S16" => nested(None, vec![ok(202, "Sent now; a new run started", Json(session_resp))], vec![], &[409]),
        "S17" => nested(None, vec![ok(200, "Who has access", Json("ItemAccessResponse"))], vec![], &[]),
        "S18" => nested(Some(Json("AccessChangeRequest")), vec![ok(200, "Changed", Json("ItemAccessChangeResponse"))], vec![], &[501]),
        "A1" => nested(None, vec![ok(200, "Artifacts with fresh signed URLs", Json("ArtifactListResponse"))], q::<ArtifactListQuery>(), &[]),
        "A2" => nested(None, vec![ok(200, "A signed download URL", Json("ArtifactDownloadResponse"))], q::<ArtifactDownloadQuery>(), &[]),
        "A3" => nested(None, vec![ok(200, "Deleted", Json("ArtifactDeleteResponse"))], vec![], &[]),
        "A4" => nested(Some(Json("ArtifactRenameRequest")), vec![ok(200, "The display name", Json("ArtifactNameResponse"))], vec![], &[]),
        "A5" => nested(None, vec![ok(200, "Versions, newest first", Json("ArtifactVersionsResponse"))], vec![], &[]),
        "A6" => nested(None, vec![ok(200, "Who has access", Json("ItemAccessResponse"))], vec![], &[]),
        "A7" => nested(Some(Json("AccessChangeRequest")), vec![ok(200, "Changed", Json("ItemAccessChangeResponse"))], vec![], &[501]),
        "G10" => nested(Some(Json("AgentSkillsRequest")), vec![ok(200, "The agent's skills after the change", Json("AgentSkillsResponse"))], vec![], &[409]),
        "SK1" => nested(
            None,
            vec![ok(200, "Skills of the workspace (with `agent_id`: the agent's, G11)", Json("SkillListResponse"))],
            q::<wire::skills::SkillListQuery>(),
            &[],
        ),
        "SK2" => {
            nested(Some(Bytes("multipart/form-data")), vec![ok(201, "Created (version 1); fields in SkillUploadForm", Json("SkillResponse"))], vec![], &[413])
        }
        "SK3" => {
            nested(Some(Bytes("multipart/form-data")), vec![ok(200, "The next version; fields in SkillUploadForm", Json("SkillResponse"))], vec![], &[413])
        }
        "SK4" => nested(
            None,
            vec![ok(200, "A signed URL of a ZIP of the version's files", Json("SkillDownloadResponse"))],
            q::<wire::skills::SkillDownloadQuery>(),
            &[],
        ),
        "SK5" => nested(None, vec![ok(200, "Deleted", Json("SkillDeleteResponse"))], vec![], &[]),
        "SK6" => nested(None, vec![ok(200, "Who has access", Json("ItemAccessResponse"))], vec![], &[]),
        "SK7" => nested(Some(Json("AccessChangeRequest")), vec![ok(200, "Changed", Json("ItemAccessChangeResponse"))], vec![], &[501]),
        "SY1" => nested(Some(Json("CliSyncRequest")), vec![ok(200, "The desired skill set's manifest", Json("CliSyncPlanResponse"))], vec![], &[]),
        "SY2" => nested(
            Some(Json("CliSyncRequest")),
            vec![ok(200, "A ZIP: gumloop-sync-manifest.json (CliSyncBundleManifest) and <install_name>/<path> files", Bytes("application/zip"))],
            vec![],
            &[],
        ),
        "A8" => nested(Some(Json("ArtifactPasswordRequest")), vec![ok(200, "Stored", Json("SuccessResponse"))], vec![], &[]),
        "L1" => flat(Some(Json("StartAgentRequest")), vec![ok(202, "Started", Json("StartAgentResponse"))], vec![], &[409]),
        "L2" => flat(None, vec![ok(200, "The interaction in any state", Json("AgentStatusResponse"))], q::<LegacyIdentityQuery>(), &[]),
        "F1" => flat(Some(Json("StartPipelineRequest")), vec![ok(200, "Started (QUEUED)", Json("StartPipelineResponse"))], vec![], &[404]),
        "F2" => flat(None, vec![ok(200, "The run", Json("FlowRun"))], q::<FlowRunQuery>(), &[404]),
        "F3" => flat(None, vec![ok(200, "Terminating (or unchanged when terminal)", Json("KillPipelineResponse"))], q::<FlowRunQuery>(), &[404]),
        "F4" => flat(None, vec![ok(200, "Saved items of the user or team", Json("SavedItemsResponse"))], q::<LegacyIdentityQuery>(), &[]),
        "F5" => flat(None, vec![ok(200, "Workbooks with their saved items", Json("WorkbooksResponse"))], q::<LegacyIdentityQuery>(), &[]),
        "F6" => flat(None, vec![ok(200, "The flow's inputs", Json("FlowInputsResponse"))], q::<LegacyIdentityQuery>(), &[404]),
        "F7" => flat(None, vec![ok(200, "Saved item id → its 10 most recent runs (FlowRunSummary)", AnyJson)], q::<LegacyIdentityQuery>(), &[404]),
        "FL1" => nested(None, vec![ok(200, "Saved flows of the workspace", Json("FlowListResponse"))], vec![], &[]),
        "FL2" => nested(Some(Json("FlowSaveRequest")), vec![ok(201, "Saved (version 1)", Json("FlowDetail"))], vec![], &[409]),
        "FL3" => nested(Some(Json("FlowSaveRequest")), vec![ok(200, "Every validation error", Json("FlowValidateResponse"))], vec![], &[]),
        "FL8" => nested(None, vec![ok(200, "Node kinds", Json("NodeKindsResponse"))], vec![], &[]),
        "FL4" => nested(None, vec![ok(200, "The flow and its document (`?version=N`: an older one)", Json("FlowDetail"))], vec![], &[]),
        "FL5" => nested(Some(Json("FlowSaveRequest")), vec![ok(200, "Saved as the next version", Json("FlowDetail"))], vec![], &[]),
        "FL6" => nested(None, vec![ok(200, "Deleted", Json("FlowDeleteResponse"))], vec![], &[]),
        "FL7" => nested(None, vec![ok(200, "Versions, newest first", Json("FlowVersionsResponse"))], vec![], &[]),
        "WB1" => nested(None, vec![ok(200, "Workbooks of the workspace", Json("WorkbookListResponse"))], vec![], &[]),
        "WB2" => nested(Some(Json("WorkbookCreateRequest")), vec![ok(201, "Created", Json("WorkbookView"))], vec![], &[409]),
        "F8" => flat(Some(Json("UploadFileRequest")), vec![ok(200, "Stored", Json("UploadFileResponse"))], vec![], &[]),
        "F9" => flat(
            Some(Json("UploadFilesRequest")),
            vec![ok(200, "All stored", Json("UploadFilesResponse")), ok(207, "Some stored", Json("UploadFilesResponse"))],
            vec![],
            &[],
        ),
        "F10" => flat(Some(Json("DownloadFileRequest")), vec![ok(200, "The file's bytes", Bytes("application/octet-stream"))], vec![], &[]),
        "F11" => flat(Some(Json("DownloadFilesRequest")), vec![ok(200, "A ZIP of the files", Bytes("application/zip"))], vec![], &[]),
        "E1" => flat(Some(Json("ExportDataRequest")), vec![ok(200, "Requested", Json("ExportDataResponse"))], vec![], &[403, 404]),
        "E2" => flat(
            None,
            vec![(200, "The export, or with `download=true` its CSV", vec![Json("DataExport"), Bytes("text/csv")])],
            q::<ExportStatusQuery>(),
            &[403, 404],
        ),
        "E3" => flat(None, vec![ok(200, "Audit log entries, newest first, with total_count/page/page_size/total_pages", AnyJson)], vec![], &[403, 404]),
        "M1" => nested(None, vec![ok(200, "Models by provider", Json("ModelListResponse"))], vec![], &[]),
        "M2" => nested(Some(Json("ModelRouteRequest")), vec![ok(200, "The decision and the candidates considered", Json("ModelRouteResponse"))], vec![], &[]),
        "C1" => nested(
            Some(Json("ChatCompletionRequest")),
            vec![(
                200,
                "The completion, or with `stream: true` (C2) Server-Sent Events of `ChatStreamChunk` JSON ending with `data: [DONE]`",
                vec![Json("ChatCompletion"), SseOf("ChatStreamChunk")],
            )],
            vec![],
            &[429, 502, 504],
        ),
        "MC1" => nested(None, vec![ok(200, "The workspace's MCP servers", Json("McpServersResponse"))], vec![], &[]),
        "MC2" => nested(None, vec![ok(200, "The server, with status and tool count as it answered now", Json("McpServerResponse"))], vec![], &[]),
        "MC3" => nested(None, vec![ok(200, "The credential sets (one: the registered headers)", Json("McpServerAccountsResponse"))], vec![], &[]),
        "MC4" => nested(None, vec![ok(200, "The server's tools", Json("McpToolsResponse"))], vec![], &[502]),
        "MC5" => nested(None, vec![ok(200, "One page of the server's resources (`cursor`)", Json("McpResourcesResponse"))], vec![], &[502]),
        "MC6" => nested(None, vec![ok(200, "The resource named by `uri`", Json("McpResourceReadResponse"))], vec![], &[502]),
        "MC7" => nested(None, vec![ok(200, "The server's prompts", Json("McpPromptsResponse"))], vec![], &[502]),
        "MC8" => nested(Some(Json("McpGetPromptRequest")), vec![ok(200, "The prompt's messages", Json("McpPromptResponse"))], vec![], &[502]),
        "MC9" => nested(
            Some(Json("McpExecuteRequest")),
            vec![ok(200, "Every call succeeded", Json("McpExecuteResponse")), ok(207, "Some calls failed (see each result)", Json("McpExecuteResponse"))],
            vec![],
            &[],
        ),
        "MCX1" => nested(Some(Json("McpServerCreateRequest")), vec![ok(201, "Registered", Json("McpServerResponse"))], vec![], &[409]),
        "MCX2" => nested(Some(Json("McpServerUpdateRequest")), vec![ok(200, "Updated", Json("McpServerResponse"))], vec![], &[409]),
        "MCX3" => nested(None, vec![ok(200, "Removed", Json("McpServerDeleteResponse"))], vec![], &[]),
        "G12" => nested(None, vec![ok(200, "The agent's MCP server entries", Json("AgentMcpServersResponse"))], vec![], &[]),
        "G13" => nested(None, vec![ok(200, "Attached (or its settings updated)", Json("AgentMcpServerResponse"))], vec![], &[409]),
        "G14" => nested(None, vec![ok(200, "Detached (idempotent)", Json("AgentMcpServerDetachResponse"))], vec![], &[]),
        "G18" => nested(None, vec![ok(200, "The agent's subagents (idempotent)", Json("AgentSubagentsResponse"))], vec![], &[]),
        "G19" => nested(None, vec![ok(200, "The agent's subagents (idempotent)", Json("AgentSubagentsResponse"))], vec![], &[]),
        "X1" => nested(None, vec![ok(200, "Your teams", Json("TeamsResponse"))], vec![], &[]),
        "X2" => nested(None, vec![ok(200, "Your organizations", Json("OrganizationsResponse"))], vec![], &[]),
        "K1" => nested(None, vec![ok(200, "Your personal keys and those of the teams you administer", Json("ApiKeyListResponse"))], vec![], &[]),
        "K2" => nested(
            Some(Json("ApiKeyCreateRequest")),
            vec![ok(201, "The new key; its secret is shown only here", Json("ApiKeyCreatedResponse"))],
            vec![],
            &[403],
        ),
        "K3" => nested(None, vec![ok(200, "The revoked key", Json("ApiKeyView"))], vec![], &[404]),
        "T1" => nested(None, vec![ok(200, "The tool catalogue", Json("ToolListResponse"))], q::<ToolListQuery>(), &[]),
        "T2" => OpDoc {
            request: Some(AnyJson),
            responses: vec![
                ok(200, "The endpoint's own response", AnyJson),
                ok(201, "The endpoint's own response", AnyJson),
                ok(202, "The endpoint's own response", AnyJson),
            ],
            query: vec![],
            errors: &[409, 501],
            error_form: Errors::Either,
        },
        "T3" => OpDoc {
            request: Some(AnyJson),
            responses: vec![ok(200, "The JSON-RPC response", AnyJson), ok(202, "Accepted (notifications and responses)", Empty)],
            query: vec![],
            errors: &[],
            error_form: Errors::JsonRpc,
        },
        "T4" => OpDoc { request: None, responses: vec![ok(204, "Ended", Empty)], query: vec![], errors: &[], error_form: Errors::JsonRpc },
        "FILE" => OpDoc {
            request: None,
            responses: vec![ok(200, "The bytes, streamed", Bytes("application/octet-stream")), ok(206, "A byte range", Bytes("application/octet-stream"))],
            query: vec![
                string_param("exp", ParameterIn::Query, true, "Expiry, unix seconds"),
                string_param("kid", ParameterIn::Query, true, "Signing key id"),
                string_param("sig", ParameterIn::Query, true, "HMAC-SHA256 signature, base64url"),
            ],
            errors: &[416],
            error_form: Errors::Nested,
        },
        _ => nested(None, vec![], vec![], &[]),
    }
}

fn method(m: &str) -> HttpMethod {
    match m {
        "POST" => HttpMethod::Post,
        "PUT" => HttpMethod::Put,
        "PATCH" => HttpMethod::Patch,
        "DELETE" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn any_json() -> Schema {
    ObjectBuilder::new().schema_type(SchemaType::AnyValue).into()
}

fn contents(bodies: &[Body]) -> Vec<(&'static str, Content)> {
    let mut out = Vec::new();
    for b in bodies {
        match *b {
            Body::Json(name) => out.push(("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name(name))).build())),
            Body::JsonAnyOf(names) => {
                let mut any = AnyOfBuilder::new();
                for n in names {
                    any = any.item(Ref::from_schema_name(*n));
                }
                out.push(("application/json", ContentBuilder::new().schema(Some(any)).build()));
            }
            Body::AnyJson => out.push(("application/json", ContentBuilder::new().schema(Some(any_json())).build())),
            // Replaced by `sse_event_schema` in `build_json` (utoipa has no `contentSchema`).
            Body::Sse => out.push(("text/event-stream", ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::Object))).build())),
            // The title names the frame schema for `sse_event_schema`.
            Body::SseOf(name) => {
                out.push(("text/event-stream", ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::Object).title(Some(name)))).build()))
            }
            Body::Bytes(media) => {
                out.push((media, ContentBuilder::new().schema(Some(ObjectBuilder::new().schema_type(Type::String).content_media_type(media))).build()))
            }
            Body::Empty => {}
        }
    }
    out
}

fn error_content(form: Errors) -> Content {
    match form {
        Errors::Nested => ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorEnvelope"))).build(),
        Errors::Flat => ContentBuilder::new().schema(Some(Ref::from_schema_name("FlatError"))).build(),
        Errors::Either => ContentBuilder::new()
            .schema(Some(AnyOfBuilder::new().item(Ref::from_schema_name("ErrorEnvelope")).item(Ref::from_schema_name("FlatError"))))
            .build(),
        Errors::JsonRpc => ContentBuilder::new().schema(Some(AnyOfBuilder::new().item(Ref::from_schema_name("ErrorEnvelope")).item(any_json()))).build(),
        Errors::OAuth => ContentBuilder::new().schema(Some(Ref::from_schema_name("OAuthError"))).build(),
    }
}

fn form_name(form: Errors) -> &'static str {
    match form {
        Errors::Nested => "Error",
        Errors::Flat => "FlatError",
        Errors::Either => "ToolError",
        Errors::JsonRpc => "McpError",
        Errors::OAuth => "OAuthError",
    }
}

const ALL_FORMS: [Errors; 5] = [Errors::Nested, Errors::Flat, Errors::Either, Errors::JsonRpc, Errors::OAuth];
const ERROR_STATUSES: [u16; 15] = [400, 401, 403, 404, 409, 413, 415, 416, 429, 500, 501, 503, 405, 502, 504];

fn error_description(status: u16) -> &'static str {
    match status {
        400 => "Invalid request (the error names the field in `param`)",
        401 => "Missing or invalid API key",
        403 => "Authenticated but not allowed",
        404 => "Unknown route or invisible object",
        409 => "State conflict",
        413 => "Body too large",
        415 => "Unsupported content type",
        416 => "Range not satisfiable",
        429 => "Rate or concurrency limit; see `ratelimit-reset` / `Retry-After`",
        500 => "Internal error",
        501 => "Not implemented by this server yet",
        502 => "The model provider failed (`provider_error`)",
        504 => "The model provider did not answer in time (`provider_timeout`)",
        503 => "Starting, draining or database down; see `Retry-After`",
        _ => "Error",
    }
}

fn family(path: &str) -> &'static str {
    use crate::middleware::{legacy_family, Legacy};
    let p = path.trim_start_matches('/');
    let first = p.split('/').next().unwrap_or("");
    match (first, legacy_family(path)) {
        ("export_data" | "export_status" | "get_audit_logs", _) => "Data exports",
        (_, Some(Legacy::Interactions)) => "Legacy interactions",
        (_, Some(Legacy::Other)) => "Legacy flows",
        ("agents", _) if p.contains("/sessions") => "Sessions",
        ("agents", _) if p.contains("/artifacts") => "Artifacts",
        ("agents", _) => "Agents",
        ("sessions", _) => "Sessions",
        ("artifacts" | "files", _) => "Artifacts",
        ("models", _) => "Models",
        ("teams" | "organizations", _) => "Tenancy",
        ("tools", _) => "Tools for AI agents",
        ("chat", _) => "Chat completions",
        _ => "Later",
    }
}

const SIGNED_FILE_PATH: &str = "/files/v1/artifacts/{artifact_id}/versions/{version_id}/{filename}";

/// Builds the document for `public_url`.
pub fn build(public_url: &str) -> OpenApi {
    let origin = public_url.trim_end_matches('/').to_string();
    let root_server: Vec<Server> = vec![ServerBuilder::new().url(origin.clone()).description(Some("Origin (outside /api/v1)")).build()];
    let mut items: Vec<(String, HttpMethod, utoipa::openapi::path::Operation)> = Vec::new();
    let file_route = crate::routes::table::RouteSpec {
        id: "FILE",
        method: "GET",
        path: SIGNED_FILE_PATH,
        summary: "Download a signed artifact URL",
        status: Status::Now,
        root: true,
    };
    for spec in ROUTES.iter().chain(std::iter::once(&file_route)) {
        let d = doc(spec.id);
        let legacy = d.error_form == Errors::Flat;
        let mut ext = utoipa::openapi::extensions::ExtensionsBuilder::new().add("x-openloop-id", spec.id);
        let mut tags = vec![family(spec.path).to_string()];
        match spec.status {
            Status::Later => {
                ext = ext.add("x-openloop-status", "later");
                tags.push("later".into());
            }
            Status::Pending => {
                ext = ext.add("x-openloop-status", "not_implemented");
                tags.push("not_implemented".into());
            }
            Status::Now => {}
        }
        let op_id = format!("{}_{}", spec.id, spec.method.to_ascii_lowercase());
        let mut op = OperationBuilder::new().operation_id(Some(op_id)).summary(Some(spec.summary)).tags(Some(tags)).extensions(Some(ext.build()));
        let mut names: Vec<String> = Vec::new();
        for seg in spec.path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(|c| c == '{' || c == '}');
            names.push(name.to_string());
            op = op.parameter(string_param(name, ParameterIn::Path, true, "Path parameter"));
        }
        let is_file = spec.id == "FILE";
        let mut params: Vec<Parameter> = d.query;
        if !spec.root {
            params.push(string_param("x-auth-key", ParameterIn::Header, false, "Acting user id (not a key, §2.3)"));
            let scope = if legacy { "project_id" } else { "team_id" };
            params.push(string_param(scope, ParameterIn::Query, false, "Team scope (§2.4)"));
        }
        for p in params {
            if !names.contains(&p.name) {
                names.push(p.name.clone());
                op = op.parameter(p);
            }
        }
        if let Some(body) = d.request {
            let mut rb = RequestBodyBuilder::new().required(Some(Required::True));
            for (media, c) in contents(&[body]) {
                rb = rb.content(media, c);
            }
            op = op.request_body(Some(rb.build()));
        }
        let implemented = spec.status == Status::Now;
        if implemented {
            for (status, what, bodies) in &d.responses {
                let mut r = ResponseBuilder::new().description(*what);
                for (media, c) in contents(bodies) {
                    r = r.content(media, c);
                }
                op = op.response(status.to_string(), r.build());
            }
        }
        let oauth = spec.path.starts_with("/oauth/");
        let mut errors: Vec<u16> = if is_file {
            vec![403, 404, 429, 500]
        } else if oauth {
            vec![501]
        } else if spec.root || !implemented {
            vec![401, 403, 404, 429, 500, 501]
        } else {
            vec![400, 401, 403, 404, 413, 429, 500, 503]
        };
        if implemented && !spec.root && !legacy {
            errors.push(415);
        }
        errors.extend_from_slice(d.errors);
        errors.sort_unstable();
        errors.dedup();
        let form = if oauth {
            Errors::OAuth
        } else if !implemented && legacy {
            Errors::Flat
        } else {
            d.error_form
        };
        for status in errors {
            op = op.response(status.to_string(), Ref::new(format!("#/components/responses/{}{status}", form_name(form))));
        }
        if is_file {
            op = op.security(SecurityRequirement::default());
        }
        if spec.root {
            op = op.servers(Some(root_server.clone()));
        }
        if oauth {
            // OAuth clients authenticate per RFC 6749, not with an API key.
            op = op.security(SecurityRequirement::default());
        }
        items.push((spec.path.to_string(), method(spec.method), op.build()));
    }
    let mut paths = PathsBuilder::new();
    for (path, m, op) in items {
        paths = paths.path(path, PathItem::new(m, op));
    }
    let mut components = ComponentsBuilder::new()
        .security_scheme("bearerAuth", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()))
        .security_scheme("apiKeyQuery", SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("api_key"))));
    for (name, schema) in schemas() {
        components = components.schema(name, schema);
    }
    for form in ALL_FORMS {
        for status in ERROR_STATUSES {
            let r = ResponseBuilder::new().description(error_description(status)).content("application/json", error_content(form)).build();
            components = components.response(format!("{}{status}", form_name(form)), r);
        }
    }
    let tag_names = [
        "Agents",
        "Sessions",
        "Artifacts",
        "Legacy interactions",
        "Legacy flows",
        "Data exports",
        "Models",
        "Chat completions",
        "Tenancy",
        "Tools for AI agents",
        "Later",
    ];
    let mut tags: Vec<_> = tag_names.iter().map(|t| TagBuilder::new().name(*t).build()).collect();
    tags.push(TagBuilder::new().name("later").description(Some("Reserved routes: authenticate, then 501 not_implemented (API.md §1.6)")).build());
    tags.push(TagBuilder::new().name("not_implemented").description(Some("In scope, not built yet: 501 not_implemented")).build());
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Openloop API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Self-hosted Gumloop-compatible API. Paths are relative to the server URL (…/api/v1), except OAuth, voice and signed file downloads, which carry their own server (the origin).",
                ))
                .build(),
        )
        .servers(Some(vec![ServerBuilder::new().url(format!("{origin}/api/v1")).build()]))
        .paths(paths.build())
        .components(Some(components.build()))
        .tags(Some(tags))
        .security(Some(vec![SecurityRequirement::new("bearerAuth", Vec::<String>::new()), SecurityRequirement::new("apiKeyQuery", Vec::<String>::new())]))
        .build()
}

/// Each SSE event as `{event, data}` with `data` a StreamFrame JSON (the OpenAPI 3.2
/// idiom for `text/event-stream`, which schema-aware clients validate per event); with
/// `frame` (C2), `data` is that schema's JSON or the final `[DONE]`.
fn sse_event_schema(frame: Option<&str>) -> Value {
    if let Some(frame) = frame {
        return json!({
            "type": "object",
            "description": format!("One Server-Sent Event: `data: <{frame} JSON>`; the last one is `data: [DONE]`."),
            "required": ["data"],
            "properties": {
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {"$ref": format!("#/components/schemas/{frame}")}},
            },
        });
    }
    json!({
        "type": "object",
        "description": "One Server-Sent Event (§12): `event: <type>`, `data: <StreamFrame JSON>`; the last one is a `finish`.",
        "required": ["data"],
        "properties": {
            "event": {"type": "string"},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {"$ref": "#/components/schemas/StreamFrame"}},
        },
    })
}

/// Extensions come from a hash map: sort them so the document is byte-for-byte stable.
fn sort_extensions(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let mut ext: Vec<(String, Value)> = Vec::new();
            for k in o.keys().filter(|k| k.starts_with("x-")).cloned().collect::<Vec<_>>() {
                if let Some(val) = o.remove(&k) {
                    ext.push((k, val));
                }
            }
            ext.sort_by(|a, b| a.0.cmp(&b.0));
            o.extend(ext);
            o.values_mut().for_each(sort_extensions);
        }
        Value::Array(a) => a.iter_mut().for_each(sort_extensions),
        _ => {}
    }
}

/// The document as JSON (what is served and committed).
pub fn build_json(public_url: &str) -> Value {
    let mut v = serde_json::to_value(build(public_url)).unwrap_or_else(|_| json!({}));
    sort_extensions(&mut v);
    if let Some(paths) = v.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut() {
                let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { continue };
                for r in responses.values_mut() {
                    if let Some(sse) = r.pointer_mut("/content/text~1event-stream") {
                        let frame = sse.pointer("/schema/title").and_then(Value::as_str).map(str::to_string);
                        sse["schema"] = sse_event_schema(frame.as_deref());
                    }
                }
            }
        }
    }
    v
}

/// The document as JSON, pretty-printed the way `docs/openapi.json` is committed.
pub fn to_pretty_json(public_url: &str) -> String {
    let v = build_json(public_url);
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

static DOC: OnceLock<Value> = OnceLock::new();

pub async fn document(State(st): State<AppState>) -> Json<Value> {
    let doc = DOC.get_or_init(|| build_json(&st.config.public_url));
    Json(doc.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed document is the generated one (regenerate with
    /// `UPDATE_OPENAPI=1 cargo test -p server openapi`).
    #[test]
    fn committed_openapi_matches_generated() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let generated = to_pretty_json(DEFAULT_PUBLIC_URL);
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("write docs/openapi.json");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is not the generated document; regenerate it with `UPDATE_OPENAPI=1 cargo test -p server openapi` and review the diff"
        );
    }

    #[test]
    fn every_operation_has_parameters_with_schemas_and_responses() {
        let v = build_json(DEFAULT_PUBLIC_URL);
        for (path, item) in v["paths"].as_object().unwrap() {
            for (m, op) in item.as_object().unwrap() {
                assert!(op["x-openloop-id"].is_string(), "{m} {path}");
                assert!(!op["responses"].as_object().unwrap().is_empty(), "{m} {path}");
                for p in op["parameters"].as_array().into_iter().flatten() {
                    assert!(p["schema"].is_object(), "{m} {path}: {p}");
                }
            }
        }
        let s1 = &v["paths"]["/agents/{agent_id}/sessions"]["post"]["responses"];
        assert!(s1["201"].is_object() && s1["202"].is_object());
        assert!(v["paths"]["/oauth/register"]["post"]["servers"][0]["url"] == DEFAULT_PUBLIC_URL);
    }
}
