//! Model-name routing and the provider registry.

use crate::anthropic::{self, AnthropicClient};
use crate::error::LlmError;
use crate::http::{self, HttpOptions, RetryPolicy};
use crate::local::{LocalConfig, LocalModels};
use crate::ollama;
use crate::openai::{self, OpenAiClient};
use crate::ChatModel;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Credentials / endpoint of a hosted provider. `Debug` never prints the key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProviderCredentials {
    pub api_key: Option<String>,
    /// Overrides the provider's default base URL (OpenAI: including `/v1`;
    /// Anthropic: without `/v1`).
    pub base_url: Option<String>,
}

impl fmt::Debug for ProviderCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderCredentials").field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]")).field("base_url", &self.base_url).finish()
    }
}

impl ProviderCredentials {
    fn key(&self) -> Option<String> {
        self.api_key.clone().filter(|k| !k.trim().is_empty())
    }

    /// The configured base URL when it differs from `default`.
    fn custom_base(&self, default: &str) -> Option<String> {
        let b = self.base_url.as_deref()?.trim().trim_end_matches('/');
        (!b.is_empty() && b != default).then(|| b.to_string())
    }

    /// Configured = a key or a non-default base URL.
    fn configured(&self, default: &str) -> bool {
        self.key().is_some() || self.custom_base(default).is_some()
    }
}

/// Configuration of [`Providers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvidersConfig {
    pub openai: Option<ProviderCredentials>,
    pub anthropic: Option<ProviderCredentials>,
    /// `OLLAMA_HOST` (`host`, `host:port` or a URL).
    pub ollama_host: Option<String>,
    /// See [`HttpOptions::request_timeout`]. Default 600 s.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// GGUF files served as `local/<file stem>`; loaded by [`Providers::try_new`]
    /// only ([`Providers::new`] ignores them).
    pub local_models: Vec<std::path::PathBuf>,
    /// Local generations run at once (default 1).
    pub local_pool_size: usize,
    pub local_tool_choice: crate::local::ToolChoice,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        ProvidersConfig {
            openai: None,
            anthropic: None,
            ollama_host: None,
            request_timeout: HttpOptions::default().request_timeout,
            retry: RetryPolicy::default(),
            local_models: Vec::new(),
            local_pool_size: 1,
            local_tool_choice: crate::local::ToolChoice::Auto,
        }
    }
}

/// Which provider serves `model_name`: `"openai"`, `"anthropic"`, `"ollama"` or `"local"`.
///
/// `openai/<m>` or bare `gpt-*`/`o1*`/`o3*`/`o4*` → OpenAI; `anthropic/<m>` or
/// bare `claude-*` → Anthropic; `ollama/<m>` → Ollama; `local/<m>` → the
/// in-process GGUF models; any other name → the OpenAI-compatible provider. Prefixes are matched case-insensitively.
pub fn provider_name(model_name: &str) -> &'static str {
    route(model_name).0
}

/// The provider-native model id: the routing prefix (`openai/`, `anthropic/`,
/// `ollama/`, `local/`) stripped, bare names unchanged.
pub fn native_model_id(model_name: &str) -> &str {
    route(model_name).1
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

fn route(model_name: &str) -> (&'static str, &str) {
    let name = model_name.trim();
    for (prefix, provider) in [("openai/", "openai"), ("anthropic/", "anthropic"), ("ollama/", "ollama"), ("local/", "local")] {
        if let Some(rest) = strip_prefix_ci(name, prefix) {
            return (provider, rest);
        }
    }
    if strip_prefix_ci(name, "claude-").is_some() {
        return ("anthropic", name);
    }
    // `gpt-*`, `o1*`, `o3*`, `o4*` and every other name → OpenAI(-compatible).
    ("openai", name)
}

/// The configured provider clients, and routing of model names to them.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    openai: Option<Arc<OpenAiClient>>,
    anthropic: Option<Arc<AnthropicClient>>,
    ollama: Option<Arc<OpenAiClient>>,
    local: Option<Arc<LocalModels>>,
}

impl Providers {
    /// Builds the clients of the configured hosted providers (sharing one
    /// connection pool). `cfg.local_models` is ignored: see [`Providers::try_new`].
    pub fn new(cfg: ProvidersConfig) -> Self {
        let client = http::build_client();
        let opts = HttpOptions { request_timeout: cfg.request_timeout, retry: cfg.retry.clone() };
        let openai = cfg.openai.filter(|c| c.configured(openai::DEFAULT_BASE_URL)).map(|c| {
            let base = c.custom_base(openai::DEFAULT_BASE_URL).unwrap_or_else(|| openai::DEFAULT_BASE_URL.to_string());
            Arc::new(OpenAiClient::with_client(client.clone(), "OpenAI", &base, c.key(), opts.clone()))
        });
        let anthropic = cfg.anthropic.filter(|c| c.configured(anthropic::DEFAULT_BASE_URL)).map(|c| {
            let base = c.custom_base(anthropic::DEFAULT_BASE_URL).unwrap_or_else(|| anthropic::DEFAULT_BASE_URL.to_string());
            Arc::new(AnthropicClient::with_client(client.clone(), &base, c.key(), opts.clone()))
        });
        let ollama = cfg.ollama_host.filter(|h| !h.trim().is_empty()).map(|h| Arc::new(ollama::client_with(client.clone(), &h, opts.clone())));
        Providers { openai, anthropic, ollama, local: None }
    }

    /// Like [`Providers::new`], and loads `cfg.local_models` (when any). The
    /// error names the file that could not be loaded and why.
    pub fn try_new(cfg: ProvidersConfig) -> Result<Self, LlmError> {
        let local = LocalConfig { models: cfg.local_models.clone(), pool_size: cfg.local_pool_size, tool_choice: cfg.local_tool_choice };
        let providers = Self::new(cfg);
        if local.models.is_empty() {
            return Ok(providers);
        }
        let models = LocalModels::load(&local).map_err(|e| LlmError::not_configured(format!("cannot load a local model: {e}")))?;
        Ok(providers.with_local(models))
    }

    /// Serves `local/<name>` with these models.
    pub fn with_local(mut self, models: LocalModels) -> Self {
        self.local = Some(Arc::new(models));
        self
    }

    pub fn local(&self) -> Option<Arc<LocalModels>> {
        self.local.clone()
    }

    /// The local model names, `local/<file stem>` (empty without local models).
    pub fn local_model_names(&self) -> Vec<String> {
        self.local.as_ref().map(|l| l.names()).unwrap_or_default()
    }

    /// See [`provider_name`].
    pub fn provider_name(model_name: &str) -> &'static str {
        provider_name(model_name)
    }

    /// Whether `provider` (`"openai"`, `"anthropic"`, `"ollama"`, `"local"`) is configured.
    pub fn is_configured(&self, provider: &str) -> bool {
        match provider {
            "openai" => self.openai.is_some(),
            "anthropic" => self.anthropic.is_some(),
            "ollama" => self.ollama.is_some(),
            "local" => self.local.is_some(),
            _ => false,
        }
    }

    pub fn openai(&self) -> Option<Arc<OpenAiClient>> {
        self.openai.clone()
    }

    pub fn anthropic(&self) -> Option<Arc<AnthropicClient>> {
        self.anthropic.clone()
    }

    pub fn ollama(&self) -> Option<Arc<OpenAiClient>> {
        self.ollama.clone()
    }

    /// The client serving `model_name` and the provider-native model id.
    /// Fails with `ProviderNotConfigured` when that provider is not configured.
    pub fn resolve(&self, model_name: &str) -> Result<(Arc<dyn ChatModel>, String), LlmError> {
        let (provider, native) = route(model_name);
        if native.trim().is_empty() {
            return Err(LlmError::provider(format!("invalid model name {model_name:?}")));
        }
        let model: Option<Arc<dyn ChatModel>> = match provider {
            "anthropic" => self.anthropic.clone().map(|c| c as Arc<dyn ChatModel>),
            "ollama" => self.ollama.clone().map(|c| c as Arc<dyn ChatModel>),
            "local" => self.local.clone().filter(|l| l.contains(native)).map(|c| c as Arc<dyn ChatModel>),
            _ => self.openai.clone().map(|c| c as Arc<dyn ChatModel>),
        };
        let hint = match provider {
            "anthropic" => "Anthropic (set ANTHROPIC_API_KEY)",
            "ollama" => "Ollama (set OLLAMA_HOST)",
            "local" => "local (start with --local-models PATH)",
            _ => "OpenAI-compatible (set OPENAI_API_KEY or OPENAI_BASE_URL)",
        };
        match model {
            Some(m) => Ok((m, native.to_string())),
            None if provider == "local" && self.local.is_some() => {
                Err(LlmError::not_configured(format!("no local model named {native:?} is loaded (loaded: {})", self.local_model_names().join(", "))))
            }
            None => Err(LlmError::not_configured(format!("model {model_name:?} needs the {hint} provider, which is not configured"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorClass;

    #[test]
    fn routing_rule() {
        let cases = [
            ("openai/gpt-4o", "openai", "gpt-4o"),
            ("gpt-4o-mini", "openai", "gpt-4o-mini"),
            ("o1-preview", "openai", "o1-preview"),
            ("o3", "openai", "o3"),
            ("o4-mini", "openai", "o4-mini"),
            ("anthropic/claude-3-5-sonnet", "anthropic", "claude-3-5-sonnet"),
            ("claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
            ("ollama/llama3.2:1b", "ollama", "llama3.2:1b"),
            ("Qwen/Qwen2.5-7B-Instruct", "openai", "Qwen/Qwen2.5-7B-Instruct"),
            ("mistral-large", "openai", "mistral-large"),
            ("OpenAI/gpt-4o", "openai", "gpt-4o"),
            ("local/SmolLM2-135M-Instruct.Q4_1", "local", "SmolLM2-135M-Instruct.Q4_1"),
        ];
        for (name, provider, native) in cases {
            assert_eq!(provider_name(name), provider, "{name}");
            assert_eq!(native_model_id(name), native, "{name}");
        }
    }

    #[test]
    fn configured_rules() {
        let p = Providers::new(ProvidersConfig {
            openai: Some(ProviderCredentials { api_key: None, base_url: Some("https://api.openai.com/v1/".into()) }),
            anthropic: Some(ProviderCredentials { api_key: Some("k".into()), base_url: None }),
            ..Default::default()
        });
        assert!(!p.is_configured("openai"));
        assert!(p.is_configured("anthropic"));
        let err = p.resolve("gpt-4o").err().unwrap();
        assert_eq!(err.class, ErrorClass::ProviderNotConfigured);
        let err = p.resolve("ollama/x").err().unwrap();
        assert_eq!(err.class, ErrorClass::ProviderNotConfigured);
        let err = p.resolve("local/x").err().unwrap();
        assert_eq!(err.class, ErrorClass::ProviderNotConfigured);
        assert!(err.message.contains("--local-models"), "{}", err.message);
        assert!(p.local_model_names().is_empty());
        let (_, native) = p.resolve("anthropic/claude-x").unwrap();
        assert_eq!(native, "claude-x");
        let creds = format!("{:?}", ProviderCredentials { api_key: Some("sk-secret".into()), base_url: None });
        assert!(!creds.contains("sk-secret"));
    }

    #[test]
    fn unreadable_local_model_is_a_clear_error() {
        let err = Providers::try_new(ProvidersConfig { local_models: vec!["/nonexistent/model.gguf".into()], ..Default::default() }).err().unwrap();
        assert_eq!(err.class, ErrorClass::ProviderNotConfigured);
        assert!(err.message.contains("/nonexistent/model.gguf"), "{}", err.message);
        let dir = std::env::temp_dir().join(format!("openloop-llm-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bogus = dir.join("bogus.gguf");
        std::fs::write(&bogus, b"not a gguf file").unwrap();
        let err = Providers::try_new(ProvidersConfig { local_models: vec![bogus.clone()], ..Default::default() }).err().unwrap();
        assert!(err.message.contains("not a readable GGUF file"), "{}", err.message);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(Providers::try_new(ProvidersConfig::default()).unwrap().local().is_none());
    }
}
