//! Error type shared by every provider.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Maximum length (in characters) of `LlmError`'s `Display` output
/// (`"<ErrorClass>: <message>"`), matching the API's error-message limit.
pub const MAX_ERROR_CHARS: usize = 4096;

/// Failure class; its name is the prefix of a failed run's error message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorClass {
    /// The provider answered with an error (4xx other than 429, 5xx after retries,
    /// malformed responses, broken streams, connection failures).
    ProviderError,
    /// The model name routes to a provider that has no credentials / host configured.
    ProviderNotConfigured,
    /// The provider kept answering `429` after all retries.
    RateLimitError,
    /// The provider did not answer (or stalled mid-stream) within the request timeout.
    TimeoutError,
}

impl ErrorClass {
    /// The class name as used in error messages (`"ProviderError"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::ProviderError => "ProviderError",
            ErrorClass::ProviderNotConfigured => "ProviderNotConfigured",
            ErrorClass::RateLimitError => "RateLimitError",
            ErrorClass::TimeoutError => "TimeoutError",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from a model call. `Display` is `"<ErrorClass>: <message>"`.
///
/// Messages built by this crate never contain API keys or request URLs and are
/// truncated so that the `Display` output is at most [`MAX_ERROR_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmError {
    pub class: ErrorClass,
    pub message: String,
}

impl LlmError {
    /// Builds an error, truncating the message so the display form fits
    /// [`MAX_ERROR_CHARS`].
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        let budget = MAX_ERROR_CHARS - class.as_str().len() - 2;
        LlmError { class, message: truncate_chars(message.into(), budget) }
    }

    pub fn provider(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::ProviderError, message)
    }

    pub fn not_configured(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::ProviderNotConfigured, message)
    }

    pub fn rate_limit(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::RateLimitError, message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::TimeoutError, message)
    }

    /// Removes every occurrence of `secret` from the message (defence in depth:
    /// providers sometimes echo a partial key back in their error bodies).
    pub(crate) fn redact(mut self, secret: Option<&str>) -> Self {
        if let Some(secret) = secret.filter(|s| s.len() >= 4) {
            if self.message.contains(secret) {
                self.message = self.message.replace(secret, "[REDACTED]");
            }
        }
        self
    }
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

impl std::error::Error for LlmError {}

/// Truncates `s` to at most `max` characters (on a char boundary), marking the
/// cut with `…`.
pub(crate) fn truncate_chars(s: String, max: usize) -> String {
    if s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_truncation() {
        let e = LlmError::provider("boom");
        assert_eq!(e.to_string(), "ProviderError: boom");
        let long = LlmError::rate_limit("é".repeat(10_000));
        assert_eq!(long.to_string().chars().count(), MAX_ERROR_CHARS);
        assert!(long.message.ends_with('…'));
    }

    #[test]
    fn redaction() {
        let e = LlmError::provider("bad key sk-secret-123 given").redact(Some("sk-secret-123"));
        assert_eq!(e.message, "bad key [REDACTED] given");
    }
}
