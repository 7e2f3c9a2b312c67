//! What `openloop serve` says at start: where it listens, where the data is, which
//! model providers are configured and whether each one answers, and the default model.
//! On a terminal that is a short readable banner; otherwise one structured log line per
//! provider. A server with no usable provider says exactly what to set.

use std::io::IsTerminal;
use std::time::Duration;

use crate::config::Settings;

/// How long a provider has to answer its model list.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One provider's state at start-up.
#[derive(Debug, Clone)]
pub struct ProviderCheck {
    pub provider: &'static str,
    /// Where it is reached (no secrets), when configured.
    pub endpoint: Option<String>,
    pub status: CheckStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckStatus {
    /// Answered its model list: how many models it reported.
    Answers(usize),
    /// Configured, but the check failed: why.
    Fails(String),
    /// Not configured: the setting that would configure it.
    NotConfigured(&'static str),
}

impl ProviderCheck {
    pub fn usable(&self) -> bool {
        matches!(self.status, CheckStatus::Answers(_))
    }
}

/// Asks every configured provider for its model list, concurrently, each bounded by
/// [`PROBE_TIMEOUT`].
pub async fn check_providers(settings: &Settings, providers: &llm::Providers) -> Vec<ProviderCheck> {
    let openai = async {
        let Some(c) = providers.openai() else {
            return ProviderCheck { provider: "openai", endpoint: None, status: CheckStatus::NotConfigured("OPENAI_API_KEY (or OPENAI_BASE_URL)") };
        };
        let status = match tokio::time::timeout(PROBE_TIMEOUT, c.list_models()).await {
            Ok(Ok(models)) => CheckStatus::Answers(models.len()),
            Ok(Err(e)) => CheckStatus::Fails(e.to_string()),
            Err(_) => CheckStatus::Fails(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        };
        ProviderCheck { provider: "openai", endpoint: Some(c.base_url().to_string()), status }
    };
    let anthropic = async {
        let Some(c) = providers.anthropic() else {
            return ProviderCheck { provider: "anthropic", endpoint: None, status: CheckStatus::NotConfigured("ANTHROPIC_API_KEY") };
        };
        let base = c.base_url().trim_end_matches("/v1").to_string();
        let status = anthropic_models(&base, settings.anthropic_api_key.as_deref().unwrap_or("")).await;
        ProviderCheck { provider: "anthropic", endpoint: Some(base), status }
    };
    let ollama = async {
        let Some(c) = providers.ollama() else {
            return ProviderCheck { provider: "ollama", endpoint: None, status: CheckStatus::NotConfigured("OLLAMA_HOST") };
        };
        let status = match tokio::time::timeout(PROBE_TIMEOUT, c.list_models()).await {
            Ok(Ok(models)) => CheckStatus::Answers(models.len()),
            Ok(Err(e)) => CheckStatus::Fails(e.to_string()),
            Err(_) => CheckStatus::Fails(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        };
        ProviderCheck { provider: "ollama", endpoint: Some(c.base_url().to_string()), status }
    };
    let (a, b, c) = tokio::join!(openai, anthropic, ollama);
    // Local models were loaded at start-up: they answer if they loaded.
    let names = providers.local_model_names();
    let local = if names.is_empty() {
        ProviderCheck { provider: "local", endpoint: None, status: CheckStatus::NotConfigured("--local-models PATH.gguf") }
    } else {
        ProviderCheck { provider: "local", endpoint: Some(names.join(", ")), status: CheckStatus::Answers(names.len()) }
    };
    vec![a, b, c, local]
}

/// Anthropic's `GET /v1/models`: answers 200 with a valid key.
async fn anthropic_models(base: &str, key: &str) -> CheckStatus {
    let client = match reqwest::Client::builder().timeout(PROBE_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => return CheckStatus::Fails(e.to_string()),
    };
    let resp = client.get(format!("{base}/v1/models")).header("x-api-key", key).header("anthropic-version", "2023-06-01").send().await;
    match resp {
        Ok(r) if r.status().is_success() => {
            let n = r.json::<serde_json::Value>().await.ok().and_then(|v| v.get("data").and_then(|d| d.as_array()).map(Vec::len)).unwrap_or(0);
            CheckStatus::Answers(n)
        }
        Ok(r) => CheckStatus::Fails(format!("answered HTTP {} (check ANTHROPIC_API_KEY)", r.status().as_u16())),
        Err(e) if e.is_timeout() => CheckStatus::Fails(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        Err(e) => CheckStatus::Fails(format!("unreachable: {}", without_url(&e))),
    }
}

/// reqwest's error text without the URL it carries (a URL may hold credentials).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "the endpoint");
    }
    s
}

/// What to set when no provider is usable.
pub const NO_PROVIDER_HINT: &str = "no model provider is usable, so every run will fail. Set OPENAI_API_KEY (or OPENAI_BASE_URL for any \
OpenAI-compatible server), ANTHROPIC_API_KEY or OLLAMA_HOST, or start with --local-models PATH.gguf (no key needed; see the README), and restart";

/// Prints the banner on a terminal, else logs the same facts.
pub fn report(settings: &Settings, url: &str, checks: &[ProviderCheck], default_model: Option<&str>) {
    if std::io::stdout().is_terminal() {
        println!("{}", render(settings, url, checks, default_model));
    }
    for c in checks {
        match &c.status {
            CheckStatus::Answers(n) => {
                tracing::info!(provider = c.provider, endpoint = c.endpoint.as_deref().unwrap_or(""), models = n, "provider answers")
            }
            CheckStatus::Fails(why) => {
                tracing::warn!(provider = c.provider, endpoint = c.endpoint.as_deref().unwrap_or(""), error = %why, "provider does not answer")
            }
            CheckStatus::NotConfigured(_) => tracing::debug!(provider = c.provider, "provider not configured"),
        }
    }
    if !checks.iter().any(ProviderCheck::usable) {
        tracing::warn!("{NO_PROVIDER_HINT}");
    }
    tracing::info!(default_model = default_model.unwrap_or(""), "default model (target of auto)");
}

/// The banner's text (no colours: it must read the same in any terminal).
pub fn render(settings: &Settings, url: &str, checks: &[ProviderCheck], default_model: Option<&str>) -> String {
    let mut out = String::new();
    let database = store::redact_url(&settings.database_url);
    out.push_str(&format!("\nOpenloop {}\n", env!("CARGO_PKG_VERSION")));
    out.push_str(&format!("  API         {url}/api/v1   (GUMLOOP_BASE_URL for the SDK)\n"));
    out.push_str(&format!("  Console     {url}/\n"));
    out.push_str(&format!("  Data        {}\n", settings.data_dir.display()));
    out.push_str(&format!("  Database    {database}\n"));
    out.push_str("  Providers\n");
    for c in checks {
        let line = match &c.status {
            CheckStatus::Answers(n) => format!("ok       {} ({n} models)", c.endpoint.as_deref().unwrap_or("")),
            CheckStatus::Fails(why) => format!("FAILING  {}: {why}", c.endpoint.as_deref().unwrap_or("")),
            CheckStatus::NotConfigured(setting) => format!("-        not configured (set {setting})"),
        };
        out.push_str(&format!("    {:<10}{line}\n", c.provider));
    }
    out.push_str(&format!("  Default     {}\n", default_model.unwrap_or("none (agents must name a model)")));
    if !checks.iter().any(ProviderCheck::usable) {
        out.push_str(&format!("\n  Warning: {NO_PROVIDER_HINT}.\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_names_each_provider_and_what_to_set_when_none_answers() {
        let settings = crate::config::Settings::resolve(&Default::default(), Default::default(), Default::default()).expect("defaults resolve");
        let checks = vec![
            ProviderCheck { provider: "openai", endpoint: Some("http://127.0.0.1:9/v1".into()), status: CheckStatus::Fails("connection refused".into()) },
            ProviderCheck { provider: "anthropic", endpoint: None, status: CheckStatus::NotConfigured("ANTHROPIC_API_KEY") },
        ];
        let text = render(&settings, "http://127.0.0.1:8765", &checks, None);
        assert!(text.contains("openai    FAILING  http://127.0.0.1:9/v1: connection refused"), "{text}");
        assert!(text.contains("anthropic -        not configured (set ANTHROPIC_API_KEY)"), "{text}");
        assert!(text.contains("Set OPENAI_API_KEY"), "{text}");
        let ok = vec![ProviderCheck { provider: "ollama", endpoint: Some("http://h:11434/v1".into()), status: CheckStatus::Answers(3) }];
        let text = render(&settings, "http://127.0.0.1:8765", &ok, Some("ollama/llama3.2"));
        assert!(text.contains("ollama    ok       http://h:11434/v1 (3 models)") && !text.contains("Warning"), "{text}");
        assert!(text.contains("Default     ollama/llama3.2"), "{text}");
    }
}
