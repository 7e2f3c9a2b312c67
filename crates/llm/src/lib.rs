//! LLM provider clients for Openloop.
//!
//! Invariant: this crate knows nothing about HTTP servers, SQL, or the Gumloop
//! wire format. It turns a provider-neutral [`ChatRequest`] into a streamed
//! model call against OpenAI Chat Completions (and compatible servers),
//! Anthropic Messages, Ollama or an in-process GGUF model ([`local`]), and reports the answer as a stream of
//! provider-neutral [`ChatEvent`]s.
//!
//! * Model names are routed with [`Providers::resolve`] (see [`provider_name`]).
//! * Retries (`429`, `5xx`, connection errors; up to 3 attempts, honouring
//!   `retry-after` up to 30 s) happen only before the first event is yielded.
//! * Dropping a [`ChatStream`] aborts the underlying HTTP request.
//! * Errors are [`LlmError`]s whose `Display` is `"<ErrorClass>: <message>"`;
//!   messages never contain API keys.

pub mod anthropic;
mod error;
mod http;
pub mod local;
pub mod ollama;
pub mod openai;
mod providers;
mod types;

pub use anthropic::AnthropicClient;
pub use error::{ErrorClass, LlmError, MAX_ERROR_CHARS};
pub use http::{build_client, HttpOptions, RetryPolicy, CONNECT_TIMEOUT};
pub use local::{LocalConfig, LocalModels, ToolChoice as LocalToolChoice};
pub use openai::OpenAiClient;
pub use providers::{native_model_id, provider_name, ProviderCredentials, Providers, ProvidersConfig};
pub use types::{collect, parse_tool_arguments, ChatEvent, ChatMessage, ChatRequest, ChatResponse, ChatStream, ToolCall, ToolSpec, Usage};

use async_trait::async_trait;

/// A chat model provider. `req.model` is the provider-native model id.
///
/// Errors before the first byte of the answer (after retries) are returned by
/// `stream` itself; later failures are yielded as a final `Err` item.
#[async_trait]
pub trait ChatModel: Send + Sync {
    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, LlmError>;
}
