//! One error value for every endpoint. The v1 nested envelope and the legacy flat form
//! are two serializations of the same `ApiError`.

use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

/// Error codes of the nested envelope (API.md §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // 400
    InvalidJson,
    InvalidRequest,
    InvalidId,
    InvalidPageSize,
    InvalidSort,
    InvalidCursor,
    InvalidName,
    InvalidInput,
    InvalidModel,
    InvalidIdempotencyKey,
    InvalidFileName,
    InvalidFileContent,
    InvalidPassword,
    InvalidAttachment,
    ApprovalResponsesNotSupported,
    InvalidApprovalResponse,
    UserIdRequired,
    /// C1/C2: the model routes to a provider this server has no credentials for.
    ProviderNotConfigured,
    // 401
    MissingApiKey,
    InvalidApiKey,
    // 403
    IdentityMismatch,
    NotTeamMember,
    TeamMismatch,
    TeamKeyNotSupported,
    PermissionDenied,
    OrganizationAdminRequired,
    PlatformAgentNotDeletable,
    SignatureInvalid,
    SignatureExpired,
    // 404
    RouteNotFound,
    TeamNotFound,
    AgentNotFound,
    AgentVersionNotFound,
    SessionNotFound,
    QueuedMessageNotFound,
    ArtifactNotFound,
    ArtifactVersionNotFound,
    FlowNotFound,
    RunNotFound,
    FileNotFound,
    DataExportNotFound,
    OrganizationNotFound,
    ToolNotFound,
    ApiKeyNotFound,
    SkillNotFound,
    SkillVersionNotFound,
    TriggerNotFound,
    McpServerNotFound,
    // 405
    MethodNotAllowed,
    // 409
    SessionAlreadyExists,
    AgentAlreadyExists,
    FlowAlreadyExists,
    InteractionNotInTerminalState,
    AgentVersionConflict,
    NoPendingApprovals,
    QueueFull,
    IdempotencyKeyReused,
    IdempotencyKeyInUse,
    TriggerDisabled,
    McpServerAlreadyExists,
    // 413
    PayloadTooLarge,
    FileTooLarge,
    // 415
    UnsupportedMediaType,
    // 429
    RateLimited,
    AgentConcurrencyLimit,
    /// C1/C2: the model provider kept answering 429.
    ProviderRateLimited,
    // 500
    InternalError,
    // 501
    NotImplemented,
    // 502
    /// C1/C2: the model provider failed (error answer, broken stream, unreachable).
    ProviderError,
    /// MC2–MC9: the MCP server could not be reached or answered with an error.
    McpServerError,
    // 503
    ServiceUnavailable,
    // 504
    /// C1/C2: the model provider did not answer within the request timeout.
    ProviderTimeout,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            InvalidJson
            | InvalidRequest
            | InvalidId
            | InvalidPageSize
            | InvalidSort
            | InvalidCursor
            | InvalidName
            | InvalidInput
            | InvalidModel
            | InvalidIdempotencyKey
            | InvalidFileName
            | InvalidFileContent
            | InvalidPassword
            | InvalidAttachment
            | ApprovalResponsesNotSupported
            | InvalidApprovalResponse
            | UserIdRequired
            | ProviderNotConfigured => 400,
            MissingApiKey | InvalidApiKey => 401,
            IdentityMismatch
            | NotTeamMember
            | TeamMismatch
            | TeamKeyNotSupported
            | PermissionDenied
            | OrganizationAdminRequired
            | PlatformAgentNotDeletable
            | SignatureInvalid
            | SignatureExpired => 403,
            RouteNotFound
            | TeamNotFound
            | AgentNotFound
            | AgentVersionNotFound
            | SessionNotFound
            | QueuedMessageNotFound
            | ArtifactNotFound
            | ArtifactVersionNotFound
            | FlowNotFound
            | RunNotFound
            | FileNotFound
            | DataExportNotFound
            | OrganizationNotFound
            | ToolNotFound
            | ApiKeyNotFound
            | SkillNotFound
            | SkillVersionNotFound
            | TriggerNotFound
            | McpServerNotFound => 404,
            MethodNotAllowed => 405,
            SessionAlreadyExists
            | AgentAlreadyExists
            | FlowAlreadyExists
            | InteractionNotInTerminalState
            | AgentVersionConflict
            | NoPendingApprovals
            | QueueFull
            | IdempotencyKeyReused
            | IdempotencyKeyInUse
            | TriggerDisabled
            | McpServerAlreadyExists => 409,
            PayloadTooLarge | FileTooLarge => 413,
            UnsupportedMediaType => 415,
            RateLimited | AgentConcurrencyLimit | ProviderRateLimited => 429,
            InternalError => 500,
            NotImplemented => 501,
            ProviderError | McpServerError => 502,
            ServiceUnavailable => 503,
            ProviderTimeout => 504,
        }
    }

    /// The wire name (snake_case), as serde renders the variant.
    pub fn name(self) -> String {
        match serde_json::to_value(self) {
            Ok(Value::String(s)) => s,
            _ => "internal_error".to_string(),
        }
    }
}

/// The `type` of the nested envelope, derived from the status (§3.1).
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 | 413 | 415 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 | 405 => "not_found_error",
        409 => "conflict_error",
        429 => "rate_limit_error",
        503 => "overloaded_error",
        _ => "api_error",
    }
}

/// An API error. `legacy` holds the exact flat string for legacy endpoints when it
/// differs from the code (e.g. `"gummie_id is required"`).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub param: Option<String>,
    pub details: Map<String, Value>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { status: code.status(), code: code.name(), message: message.into(), param: None, details: Map::new(), retry_after: None }
    }

    /// A legacy flat error with an exact string (§3.2).
    pub fn flat(status: u16, error: impl Into<String>) -> Self {
        let error = error.into();
        ApiError { status, message: error.clone(), code: error, param: None, details: Map::new(), retry_after: None }
    }

    pub fn param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub fn invalid_request(param: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message).param(param)
    }

    pub fn internal() -> Self {
        Self::new(ErrorCode::InternalError, "Internal error; the request was not completed. Retry later.")
    }

    pub fn not_implemented(what: &str) -> Self {
        Self::new(ErrorCode::NotImplemented, format!("{what} is not implemented by this Openloop server yet."))
    }

    /// The nested v1 envelope.
    pub fn nested_body(&self) -> Value {
        json!({"error": {
            "code": self.code,
            "message": self.message,
            "type": error_type(self.status),
            "param": self.param,
            "details": Value::Object(self.details.clone()),
        }})
    }

    /// The legacy flat form: `{"error": "<string>"}` plus `message`/`metadata` only when
    /// the error carries more than its string (rate limits, missing files).
    pub fn flat_body(&self) -> Value {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(self.code.clone()));
        if !self.details.is_empty() {
            if self.message != self.code {
                body.insert("message".into(), Value::String(self.message.clone()));
            }
            body.insert("metadata".into(), Value::Object(self.details.clone()));
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Schema of the nested error envelope, for the OpenAPI document.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorObject,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorObject {
    pub code: String,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub details: Map<String, Value>,
}

/// Schema of the legacy flat error.
#[derive(Serialize, ToSchema)]
pub struct FlatError {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// OAuth endpoints' error form (RFC 6749 §5.2; API.md §8.12).
#[derive(Serialize, ToSchema)]
pub struct OAuthError {
    pub error: String,
    pub error_description: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_snake_case_and_map_status() {
        assert_eq!(ErrorCode::AgentVersionConflict.name(), "agent_version_conflict");
        assert_eq!(ErrorCode::AgentVersionConflict.status(), 409);
        let e = ApiError::new(ErrorCode::InvalidPageSize, "bad").param("page_size");
        let body = e.nested_body();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], "page_size");
        assert_eq!(body["error"]["details"], json!({}));
    }

    #[test]
    fn flat_body_is_exact_string_only() {
        let e = ApiError::flat(404, "interaction_not_found");
        assert_eq!(e.flat_body(), json!({"error": "interaction_not_found"}));
    }
}
