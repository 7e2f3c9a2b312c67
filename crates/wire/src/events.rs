//! The SSE event vocabulary (API.md §12.3). Events are persisted as their JSON (the
//! `type` tag included) and framed as `event: <type>` / `data: <json + stream_cursor>`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::sessions::{PendingApproval, SessionState};

/// Token usage as events carry it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventUsage {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

impl EventUsage {
    /// From a stored usage object (missing counters are 0).
    pub fn from_value(u: &Value) -> Self {
        let n = |k: &str| u.get(k).and_then(Value::as_i64).unwrap_or(0);
        EventUsage { input_tokens: n("input_tokens"), output_tokens: n("output_tokens") }
    }
}

/// Why a stream ended (`finishReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    MaxSteps,
    ApprovalRequired,
    Error,
    Cancelled,
    Interrupted,
    NotResumable,
    Idle,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::MaxSteps => "max_steps",
            FinishReason::ApprovalRequired => "approval_required",
            FinishReason::Error => "error",
            FinishReason::Cancelled => "cancelled",
            FinishReason::Interrupted => "interrupted",
            FinishReason::NotResumable => "not_resumable",
            FinishReason::Idle => "idle",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_string())).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StateData {
    pub state: SessionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ArtifactData {
    pub artifact_id: String,
    pub version_id: String,
    pub filename: String,
    pub media_type: String,
    pub size: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunErrorInfo {
    /// The §7.9 error class in snake_case, e.g. `provider_error`.
    pub code: String,
    pub message: String,
}

/// One stream event (§12.3). `stream_cursor` is added when the event is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum StreamEvent {
    /// First event of each run segment.
    Start {
        interaction_id: String,
        session_id: String,
        message_id: Option<String>,
        state: SessionState,
    },
    DataState {
        data: StateData,
    },
    StartStep {
        step: i64,
    },
    FinishStep {
        step: i64,
        usage: EventUsage,
    },
    TextStart {
        id: String,
    },
    TextDelta {
        id: String,
        delta: String,
    },
    TextEnd {
        id: String,
    },
    ReasoningStart {
        id: String,
    },
    ReasoningDelta {
        id: String,
        delta: String,
    },
    ReasoningEnd {
        id: String,
    },
    ToolInputStart {
        #[serde(rename = "toolCallId")]
        tool_call_id: String,
        #[serde(rename = "toolName")]
        tool_name: String,
    },
    ToolInputDelta {
        #[serde(rename = "toolCallId")]
        tool_call_id: String,
        #[serde(rename = "inputTextDelta")]
        input_text_delta: String,
    },
    ToolInputAvailable {
        #[serde(rename = "toolCallId")]
        tool_call_id: String,
        #[serde(rename = "toolName")]
        tool_name: String,
        input: Value,
    },
    ToolOutputAvailable {
        #[serde(rename = "toolCallId")]
        tool_call_id: String,
        output: Value,
    },
    /// A failed or rejected tool call (non-fatal: `errorText`, never `error`).
    ToolOutputError {
        #[serde(rename = "toolCallId")]
        tool_call_id: String,
        #[serde(rename = "errorText")]
        error_text: String,
    },
    ApprovalRequired {
        pending_approvals: Vec<PendingApproval>,
        #[serde(rename = "toolCallId", default, skip_serializing_if = "Option::is_none")]
        tool_call_id: Option<String>,
    },
    DataArtifact {
        data: ArtifactData,
    },
    /// A run failure; a `finish` with `finishReason: "error"` follows.
    Error {
        error: RunErrorInfo,
        #[serde(rename = "errorMessage")]
        error_message: String,
    },
    /// The last event of every stream response.
    Finish {
        #[serde(rename = "final")]
        is_final: bool,
        #[serde(rename = "finishReason")]
        finish_reason: FinishReason,
        state: SessionState,
        interaction_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<EventUsage>,
    },
}

impl StreamEvent {
    /// The `finish` event, built in one place.
    pub fn finish(session_id: &str, reason: FinishReason, state: SessionState, usage: Option<EventUsage>) -> Self {
        StreamEvent::Finish { is_final: true, finish_reason: reason, state, interaction_id: session_id.to_string(), usage }
    }

    /// The persisted form.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            StreamEvent::Start { .. } => "start",
            StreamEvent::DataState { .. } => "data-state",
            StreamEvent::StartStep { .. } => "start-step",
            StreamEvent::FinishStep { .. } => "finish-step",
            StreamEvent::TextStart { .. } => "text-start",
            StreamEvent::TextDelta { .. } => "text-delta",
            StreamEvent::TextEnd { .. } => "text-end",
            StreamEvent::ReasoningStart { .. } => "reasoning-start",
            StreamEvent::ReasoningDelta { .. } => "reasoning-delta",
            StreamEvent::ReasoningEnd { .. } => "reasoning-end",
            StreamEvent::ToolInputStart { .. } => "tool-input-start",
            StreamEvent::ToolInputDelta { .. } => "tool-input-delta",
            StreamEvent::ToolInputAvailable { .. } => "tool-input-available",
            StreamEvent::ToolOutputAvailable { .. } => "tool-output-available",
            StreamEvent::ToolOutputError { .. } => "tool-output-error",
            StreamEvent::ApprovalRequired { .. } => "approval-required",
            StreamEvent::DataArtifact { .. } => "data-artifact",
            StreamEvent::Error { .. } => "error",
            StreamEvent::Finish { .. } => "finish",
        }
    }
}

/// One frame on the wire: the event plus its `stream_cursor` (`<session_id>:<seq>`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamFrame {
    #[serde(flatten)]
    pub event: StreamEvent,
    pub stream_cursor: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_serialize_with_kebab_type_and_camel_fields() {
        let e = StreamEvent::ToolOutputError { tool_call_id: "tc_1".into(), error_text: "boom".into() };
        assert_eq!(e.to_value(), json!({"type": "tool-output-error", "toolCallId": "tc_1", "errorText": "boom"}));
        assert_eq!(e.kind(), "tool-output-error");
        let f = StreamEvent::finish("sess_1", FinishReason::Stop, SessionState::Completed, Some(EventUsage { input_tokens: 1, output_tokens: 2 }));
        assert_eq!(
            f.to_value(),
            json!({"type": "finish", "final": true, "finishReason": "stop", "state": "completed", "interaction_id": "sess_1", "usage": {"input_tokens": 1, "output_tokens": 2}})
        );
        for k in ["start", "data-state", "finish-step", "approval-required", "data-artifact"] {
            assert!(k.contains('-') || k == "start");
        }
    }

    #[test]
    fn kind_matches_serde_tag() {
        let samples = vec![
            StreamEvent::StartStep { step: 1 },
            StreamEvent::DataState { data: StateData { state: SessionState::Queued, queue_position: Some(2) } },
            StreamEvent::ApprovalRequired { pending_approvals: vec![], tool_call_id: None },
            StreamEvent::Error { error: RunErrorInfo { code: "provider_error".into(), message: "m".into() }, error_message: "m".into() },
        ];
        for e in samples {
            assert_eq!(e.to_value()["type"], e.kind());
        }
    }
}
