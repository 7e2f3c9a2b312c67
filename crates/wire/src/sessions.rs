//! Session shapes (API.md §8.0 Session, MessagePayload, Part; §8.2 S1–S18).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::agents::CreatorPayload;

/// Session states (§6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Idle,
    Queued,
    Processing,
    ApprovalRequired,
    Completed,
    Failed,
    Cancelled,
}

impl SessionState {
    pub const ALL: [SessionState; 7] = [Self::Idle, Self::Queued, Self::Processing, Self::ApprovalRequired, Self::Completed, Self::Failed, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::ApprovalRequired => "approval_required",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// States in which a new user message may start a run immediately (S7, L1 uses
    /// `accepts_legacy_continuation`).
    pub fn accepts_messages(self) -> bool {
        matches!(self, Self::Idle | Self::Completed | Self::Failed | Self::Cancelled | Self::ApprovalRequired)
    }

    /// L1 continuation needs a legacy-terminal interaction.
    pub fn accepts_legacy_continuation(self) -> bool {
        matches!(self, Self::Idle | Self::Completed | Self::Failed | Self::Cancelled)
    }

    /// A run is active (holds or waits for a slot, or is paused).
    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Processing | Self::ApprovalRequired)
    }

    /// Legacy L2 `state`.
    pub fn legacy(self) -> &'static str {
        match self {
            Self::Queued | Self::Processing | Self::ApprovalRequired => "ASYNC_PROCESSING",
            Self::Idle | Self::Completed => "COMPLETED",
            Self::Failed | Self::Cancelled => "FAILED",
        }
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `type` of a session: `api` (S1, L1), `tool` (§10), `flow` (hidden flow sessions),
/// `subagent` (a parent agent's delegation, G18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    Api,
    Tool,
    Flow,
    Subagent,
}

/// S3 `sort_order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionSort {
    Newest,
    Oldest,
    NameAsc,
    NameDesc,
    CreditsDesc,
    CreditsAsc,
}

/// One item of an array `input`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ContentItem {
    Text(String),
    Part(TextPart),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TextPartType {
    Text,
    InputText,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TextPart {
    #[serde(rename = "type")]
    pub kind: TextPartType,
    pub text: String,
}

/// Message content: a string, or an array of strings and text items joined with `"\n"`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Items(Vec<ContentItem>),
}

// Hand-written so that a bad item is reported at its index (`input[2]`), which an
// untagged derive cannot do.
impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = MessageContent;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of strings and {\"type\": \"text\", \"text\": …} items")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(v.to_string()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<MessageContent, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<ContentItem>()? {
                    items.push(item);
                }
                Ok(MessageContent::Items(items))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl<'de> Deserialize<'de> for ContentItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(d)? {
            Value::String(s) => Ok(ContentItem::Text(s)),
            Value::Object(o) => {
                let kind = match o.get("type").and_then(Value::as_str) {
                    Some("text") => TextPartType::Text,
                    Some("input_text") => TextPartType::InputText,
                    _ => return Err(D::Error::custom("not supported: send strings or {\"type\": \"text\", \"text\": …} items (images later)")),
                };
                match o.get("text") {
                    Some(Value::String(t)) => Ok(ContentItem::Part(TextPart { kind, text: t.clone() })),
                    _ => Err(D::Error::custom("text must be a string")),
                }
            }
            _ => Err(D::Error::custom("not supported: send strings or {\"type\": \"text\", \"text\": …} items")),
        }
    }
}

impl MessageContent {
    /// The text the model sees.
    pub fn text(&self) -> String {
        match self {
            MessageContent::Text(s) => s.clone(),
            MessageContent::Items(items) => items
                .iter()
                .map(|i| match i {
                    ContentItem::Text(s) => s.as_str(),
                    ContentItem::Part(p) => p.text.as_str(),
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// S1/S2 body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SessionCreateRequest {
    /// First message; with it the session starts processing (`202`), without it an
    /// `idle` stub is created (`201`).
    pub input: Option<MessageContent>,
    /// Alias of `input` (`input` wins).
    pub message: Option<MessageContent>,
    /// Caller-chosen id, `^[A-Za-z0-9_-]{1,128}$`.
    pub session_id: Option<String>,
    /// 1–256 characters after trimming; default: the agent's name.
    pub name: Option<String>,
    /// Stored as `metadata.client`, not echoed.
    pub metadata: Option<Map<String, Value>>,
    /// Keep the session in memory only (§7.10).
    pub incognito: Option<bool>,
    /// `true`: answer Server-Sent Events (S2).
    pub stream: Option<bool>,
}

/// An S7 attachment: a file uploaded with S10.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Attachment {
    /// The stored path S10 returned.
    pub file_name: String,
    pub media_type: Option<String>,
}

/// S7 `delivery`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    #[default]
    Immediate,
    Queued,
}

/// S7/S8 body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SessionMessageRequest {
    pub input: Option<MessageContent>,
    /// Alias of `input`.
    pub message: Option<MessageContent>,
    /// At most 10 files uploaded to this session (S10).
    pub attachments: Option<Vec<Attachment>>,
    pub delivery: Option<Delivery>,
    /// `true`: answer Server-Sent Events (S8).
    pub stream: Option<bool>,
    /// S8 only (with `stream: true`): resolve approvals and stream the resumed run.
    pub approval_responses: Option<Vec<ApprovalResponse>>,
}

/// S6 (closed body).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRenameRequest {
    pub name: String,
}

/// S10 body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionFileRequest {
    pub file_name: String,
    /// Base64 (padding optional).
    pub file_content: String,
    pub media_type: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalAction {
    Accept,
    Reject,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ApprovalAnswer {
    /// Answers to `human_input` questions, by question name.
    pub values: Option<Map<String, Value>>,
}

/// One item of S11 `approval_responses`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalResponse {
    pub action_request_id: String,
    pub action: ApprovalAction,
    /// At most 1000 characters.
    pub reason: Option<String>,
    pub response: Option<ApprovalAnswer>,
}

/// S11 body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionApprovalsRequest {
    /// 1–20 items, processed in order.
    pub approval_responses: Vec<ApprovalResponse>,
}

/// S13/S14 body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueueMessageRequest {
    pub input: Option<MessageContent>,
    pub message: Option<MessageContent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessRole {
    Viewer,
    Editor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    Person,
    Team,
    Organization,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessGrant {
    #[serde(rename = "type")]
    pub kind: GrantType,
    /// `person` grants.
    pub email: Option<String>,
    /// `team` grants.
    pub team_id: Option<String>,
    /// Required in `share`.
    pub role: Option<AccessRole>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    None,
    Anyone,
    Password,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LinkSetting {
    pub mode: LinkMode,
    pub role: Option<AccessRole>,
}

/// S18 / A7 body: at least one key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AccessChangeRequest {
    pub share: Option<Vec<AccessGrant>>,
    pub remove: Option<Vec<AccessGrant>>,
    pub link: Option<LinkSetting>,
}

/// S3 query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct SessionListQuery {
    /// Case-insensitive substring of the name or of message text (alias `search_query`).
    pub search: Option<String>,
    pub search_query: Option<String>,
    /// Comma-separated states (§6.1).
    pub state: Option<String>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<SessionKind>,
    pub creator_user_id: Option<String>,
    pub trigger_id: Option<String>,
    pub sort_order: Option<SessionSort>,
    #[param(minimum = 1, maximum = 100)]
    #[schema(minimum = 1, maximum = 100)]
    pub page_size: Option<i64>,
    pub cursor: Option<String>,
}

/// S4/S5 query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionRetrieveQuery {
    /// `true`: stream (S5) instead of the JSON object.
    pub stream: Option<bool>,
    /// S5: resume after this `stream_cursor`.
    pub last_cursor: Option<String>,
}

/// The result of a finished tool call inside a `tool_invocation` part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ToolInvocationResult {
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    /// Absent until the call finished; the error text for `error`/`rejected`.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// A present key (also `null`) is `Some`, an absent one `None`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Part `type` (§8.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PartType {
    Text,
    Reasoning,
    ToolInvocation,
    File,
    Error,
}

/// A message part (§8.1.2). Deserializing a stored part keeps exactly the allow-listed
/// fields: that is the sanitization rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Part {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: PartType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(rename = "toolCallId", default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(rename = "toolName", default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// `completed`, `pending`, `awaiting_approval`, `running`, `error`, `rejected`, `cancelled`.
    #[serde(rename = "toolCallState", default, skip_serializing_if = "Option::is_none")]
    pub tool_call_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ToolInvocationResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Artifact `{artifact_id, version_id, filename, media_type, size}` or attachment
    /// `{file_name, media_type, size}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<Map<String, Value>>,
}

impl Part {
    /// Sanitized parts from a stored parts array; malformed entries are dropped.
    pub fn list_from_stored(parts: &Value) -> Vec<Part> {
        parts.as_array().map(|a| a.iter().filter_map(|p| Part::deserialize(p).ok()).collect()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

/// MessagePayload (§8.0).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessagePayload {
    pub id: String,
    pub role: Role,
    /// User text, or the assistant's text parts joined with `"\n"`; never an array.
    pub content: Option<String>,
    pub created_at: String,
    /// The user who sent it; `null` for assistant messages.
    pub creator_id: Option<String>,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Participant {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
}

/// SessionUsage (§7.8).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SessionUsage {
    pub credit_cost: f64,
    pub tool_credit_cost: f64,
    pub flow_credit_cost: f64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalType {
    ToolApproval,
    HumanInput,
}

/// PendingApproval (§8.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PendingApproval {
    pub action_request_id: String,
    #[serde(rename = "type")]
    pub kind: ApprovalType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_label: Option<String>,
    /// `[label, value]` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub display_fields: Vec<Vec<String>>,
    /// `human_input` questions (§7.6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<Object>)]
    pub questions: Vec<Value>,
}

/// The Session object (§8.0).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Session {
    pub id: String,
    pub agent_id: String,
    /// The given name, else the agent's name.
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: SessionKind,
    pub state: SessionState,
    /// Full transcript on S4 and after writes; `[]` in S3 items and S9.
    pub messages: Vec<MessagePayload>,
    pub created_at: String,
    pub agent_name: Option<String>,
    pub agent_team_id: Option<String>,
    pub agent_creator_user_id: Option<String>,
    pub agent_icon_url: Option<String>,
    /// The agent's tools, secret references stripped.
    #[schema(value_type = Vec<crate::agents::AgentTool>)]
    pub agent_tools: Vec<Value>,
    pub participants: Map<String, Value>,
    pub creator: Option<CreatorPayload>,
    pub usage: SessionUsage,
    #[schema(value_type = Option<Object>)]
    pub provenance: Option<Value>,
    pub incognito: bool,
    /// Open asks; `[]` unless `approval_required`.
    pub pending_approvals: Vec<PendingApproval>,
    /// Why the last run failed; only when `state` is `failed` (an Openloop extension
    /// the SDK ignores; the same text is in the last message's error part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RunFailure>,
}

/// A failed run's error: the class (`ProviderError`, `ToolError`, …) and the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunFailure {
    /// `ProviderError`, `ProviderNotConfigured`, `RuntimeError`, …
    pub class: String,
    pub message: String,
}

impl RunFailure {
    /// From the stored `"<Class>: <message>"` text.
    pub fn parse(text: &str) -> RunFailure {
        match text.split_once(": ") {
            Some((class, message)) if !class.is_empty() && !class.contains(char::is_whitespace) => {
                RunFailure { class: class.to_string(), message: message.to_string() }
            }
            _ => RunFailure { class: "RuntimeError".into(), message: text.to_string() },
        }
    }
}

/// `{"session", "queue_position"}` (S1, S4, S6, S7, S9, S16).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionResponse {
    pub session: Session,
    /// 1-based place among the agent's waiting runs; set only when `queued`.
    pub queue_position: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionListResponse {
    pub sessions: Vec<Session>,
    pub next_cursor: Option<String>,
}

/// S7 with `delivery: "queued"`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionMessageReceipt {
    pub message_id: String,
    /// Always `accepted`.
    pub status: String,
}

/// QueuedMessage (§8.0).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct QueuedMessage {
    pub id: String,
    pub input: String,
    /// Always `queued`.
    pub state: String,
    /// 1-based.
    pub position: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// S12, S15.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionQueueResponse {
    pub queue: Vec<QueuedMessage>,
}

/// S13, S14.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionQueuedMessageResponse {
    pub queue: Vec<QueuedMessage>,
    pub queued_message: QueuedMessage,
}

/// S10.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionFileResponse {
    /// The stored path, for S7 `attachments`.
    pub file_name: String,
    pub media_type: Option<String>,
    pub size: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalOutcome {
    Accepted,
    Rejected,
    AlreadyAccepted,
    AlreadyRejected,
    NotFound,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApprovalResult {
    pub action_request_id: String,
    pub action: ApprovalAction,
    pub outcome: ApprovalOutcome,
}

/// S11.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionApprovalsResponse {
    pub session: Session,
    pub results: Vec<ApprovalResult>,
    /// The last event before resumption: pass it to S5 as `last_cursor`.
    pub stream_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessPerson {
    pub email: String,
    pub name: Option<String>,
    pub role: AccessRole,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessTeam {
    pub team_id: String,
    pub role: AccessRole,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrganizationAccess {
    pub role: AccessRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantsVisibility {
    Private,
    Shared,
    Team,
    Organization,
}

/// ItemAccess (§8.0).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemAccess {
    pub grants_visibility: GrantsVisibility,
    pub people: Vec<AccessPerson>,
    pub teams: Vec<AccessTeam>,
    pub organization_access: Option<OrganizationAccess>,
    pub link: LinkMode,
    pub link_role: Option<AccessRole>,
    pub password_protected: bool,
}

/// S17, A6.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemAccessResponse {
    pub access: ItemAccess,
}

/// S18, A7.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemAccessChangeResponse {
    pub access: ItemAccess,
    pub notified: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_parts_keep_only_allow_listed_fields() {
        let stored = json!([
            {"id": "part_1", "type": "text", "text": "hi", "_step": 3, "secret": "x"},
            {"id": "part_2", "type": "tool_invocation", "toolCallId": "tc_1", "toolName": "web_fetch", "toolCallState": "completed",
             "result": {"args": {"url": "u"}, "result": null, "provider_id": "call_9"}},
            {"type": "text"},
        ]);
        let parts = Part::list_from_stored(&stored);
        assert_eq!(parts.len(), 2);
        assert_eq!(serde_json::to_value(&parts[0]).unwrap(), json!({"id": "part_1", "type": "text", "text": "hi"}));
        assert_eq!(serde_json::to_value(&parts[1]).unwrap()["result"], json!({"args": {"url": "u"}, "result": null}));
    }

    #[test]
    fn content_joins_items() {
        let c: MessageContent = serde_json::from_value(json!(["a", {"type": "input_text", "text": "b"}])).unwrap();
        assert_eq!(c.text(), "a\nb");
    }
}

mod request_codes {
    use super::*;
    use crate::error::ErrorCode;
    use crate::request::RequestBody;

    fn content_or(param: &str, rest: fn(&str) -> ErrorCode) -> ErrorCode {
        if param.starts_with("input") || param.starts_with("message") {
            ErrorCode::InvalidInput
        } else {
            rest(param)
        }
    }

    impl RequestBody for SessionCreateRequest {
        fn error_code(param: &str) -> ErrorCode {
            content_or(param, |_| ErrorCode::InvalidRequest)
        }
    }

    impl RequestBody for SessionMessageRequest {
        fn error_code(param: &str) -> ErrorCode {
            content_or(param, |p| {
                if p.starts_with("attachments[") {
                    ErrorCode::InvalidAttachment
                } else if p.starts_with("approval_responses[") {
                    ErrorCode::InvalidApprovalResponse
                } else {
                    ErrorCode::InvalidRequest
                }
            })
        }
    }

    impl RequestBody for QueueMessageRequest {
        fn error_code(param: &str) -> ErrorCode {
            content_or(param, |_| ErrorCode::InvalidRequest)
        }
    }

    impl RequestBody for SessionRenameRequest {}

    impl RequestBody for SessionApprovalsRequest {
        fn error_code(param: &str) -> ErrorCode {
            if param.starts_with("approval_responses[") {
                ErrorCode::InvalidApprovalResponse
            } else {
                ErrorCode::InvalidRequest
            }
        }
    }

    impl RequestBody for SessionFileRequest {
        fn error_code(param: &str) -> ErrorCode {
            match param {
                "file_name" => ErrorCode::InvalidFileName,
                "file_content" => ErrorCode::InvalidFileContent,
                _ => ErrorCode::InvalidRequest,
            }
        }
    }

    impl RequestBody for AccessChangeRequest {}
}
