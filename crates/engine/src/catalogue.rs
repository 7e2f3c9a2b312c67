//! The model catalogue behind `GET /models` (M1) and model-name validation (G2/G4).

use wire::tenancy::{ModelGroup, ModelOption};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Ollama,
    /// In-process GGUF models (`local/<file stem>`).
    Local,
}

impl Provider {
    pub fn key(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Ollama => "ollama",
            Provider::Local => "local",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Provider::OpenAi => "OpenAI",
            Provider::Anthropic => "Anthropic",
            Provider::Ollama => "Ollama",
            Provider::Local => "Local",
        }
    }
}

pub const BUILTIN_OPENAI: &[&str] = &["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3-mini", "o4-mini"];
pub const BUILTIN_ANTHROPIC: &[&str] = &["claude-3-5-haiku-latest", "claude-3-7-sonnet-latest", "claude-sonnet-4-0", "claude-opus-4-0"];

/// The provider a model name routes to (API.md §7.2).
pub fn provider_of(model_name: &str) -> (Provider, &str) {
    if let Some(m) = model_name.strip_prefix("openai/") {
        return (Provider::OpenAi, m);
    }
    if let Some(m) = model_name.strip_prefix("anthropic/") {
        return (Provider::Anthropic, m);
    }
    if let Some(m) = model_name.strip_prefix("ollama/") {
        return (Provider::Ollama, m);
    }
    if let Some(m) = model_name.strip_prefix("local/") {
        return (Provider::Local, m);
    }
    if model_name.starts_with("claude-") {
        return (Provider::Anthropic, model_name);
    }
    (Provider::OpenAi, model_name)
}

/// Models found after start-up, and when the servers were last asked.
#[derive(Debug, Default)]
struct Discovered {
    models: Vec<(Provider, String)>,
    refreshed_at: Option<std::time::Instant>,
}

#[derive(Debug, Clone, Default)]
pub struct ModelCatalogue {
    /// (provider, model id without prefix)
    entries: Vec<(Provider, String)>,
    /// Models the configured servers (Ollama, an OpenAI-compatible server) reported
    /// after start-up: shared by every clone, so a refresh serves all engines.
    discovered: std::sync::Arc<std::sync::RwLock<Discovered>>,
    available: Vec<Provider>,
    /// Target of `auto`.
    pub default_model: Option<String>,
}

impl ModelCatalogue {
    /// `extra` are `provider/model` entries (OPENLOOP_MODELS and provider discovery).
    pub fn new(available: Vec<Provider>, extra: &[String], default_model: Option<String>) -> Self {
        let mut entries: Vec<(Provider, String)> = Vec::new();
        let mut push = |p: Provider, m: &str| {
            if !m.is_empty() && !entries.iter().any(|(ep, em)| *ep == p && em == m) {
                entries.push((p, m.to_string()));
            }
        };
        for m in BUILTIN_OPENAI {
            push(Provider::OpenAi, m);
        }
        for m in BUILTIN_ANTHROPIC {
            push(Provider::Anthropic, m);
        }
        for e in extra {
            let (p, m) = provider_of(e);
            push(p, m);
        }
        let mut cat = ModelCatalogue { entries, available, default_model: None, discovered: Default::default() };
        cat.default_model = default_model.or_else(|| {
            let candidates = [(Provider::OpenAi, "gpt-4o-mini"), (Provider::Anthropic, "claude-3-5-haiku-latest")];
            candidates.iter().find(|(p, _)| cat.available.contains(p)).map(|(p, m)| format!("{}/{m}", p.key())).or_else(|| {
                [Provider::Ollama, Provider::Local]
                    .iter()
                    .find_map(|want| cat.entries.iter().find(|(p, _)| p == want && cat.available.contains(p)))
                    .map(|(p, m)| format!("{}/{m}", p.key()))
            })
        });
        cat
    }

    /// Whether G2/G4 accept this `model_name`: `auto`, a listed `provider/model`, or a
    /// bare name that routes to a listed one.
    pub fn accepts(&self, model_name: &str) -> bool {
        if model_name == "auto" {
            return true;
        }
        let (p, m) = provider_of(model_name);
        self.entries.iter().any(|(ep, em)| *ep == p && em == m) || self.read_discovered(|d| d.models.iter().any(|(ep, em)| *ep == p && em == m))
    }

    fn read_discovered<T>(&self, f: impl FnOnce(&Discovered) -> T) -> T {
        f(&self.discovered.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether a refresh of the servers' model lists is due: never done, or older than
    /// `max_age`. Marks it started, so concurrent callers do not all ask the servers.
    pub fn refresh_due(&self, max_age: std::time::Duration) -> bool {
        let mut d = self.discovered.write().unwrap_or_else(|p| p.into_inner());
        let due = d.refreshed_at.is_none_or(|t| t.elapsed() >= max_age);
        if due {
            d.refreshed_at = Some(std::time::Instant::now());
        }
        due
    }

    /// Records `provider/model` names a server reported (duplicates of listed ones are
    /// skipped); models a server stopped reporting stay accepted (agents keep working
    /// until the server itself refuses the model).
    pub fn add_discovered(&self, names: &[String]) {
        let mut d = self.discovered.write().unwrap_or_else(|p| p.into_inner());
        for n in names {
            let (p, m) = provider_of(n);
            if m.is_empty() || self.entries.iter().any(|(ep, em)| *ep == p && em == m) || d.models.iter().any(|(ep, em)| *ep == p && em == m) {
                continue;
            }
            d.models.push((p, m.to_string()));
        }
    }

    pub fn groups(&self) -> Vec<ModelGroup> {
        let mut groups = Vec::new();
        for p in [Provider::OpenAi, Provider::Anthropic, Provider::Ollama, Provider::Local] {
            // The Local group is listed only when local models are loaded.
            if p == Provider::Local && !self.entries.iter().any(|(ep, _)| *ep == p) {
                continue;
            }
            let status = if self.available.contains(&p) { "available" } else { "unavailable" };
            let discovered = self.read_discovered(|d| d.models.clone());
            let options: Vec<ModelOption> = self
                .entries
                .iter()
                .chain(discovered.iter())
                .filter(|(ep, _)| *ep == p)
                .map(|(_, m)| ModelOption { value: format!("{}/{m}", p.key()), label: m.clone(), status: status.into(), provider: p.key().into() })
                .collect();
            groups.push(ModelGroup { group_label: p.label().into(), provider: p.key().into(), options });
        }
        let auto_status = if self.default_model.is_some() { "available" } else { "unavailable" };
        groups.push(ModelGroup {
            group_label: "Openloop".into(),
            provider: "openloop".into(),
            options: vec![ModelOption { value: "auto".into(), label: "Auto".into(), status: auto_status.into(), provider: "openloop".into() }],
        });
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_models_are_listed_accepted_and_the_default_without_hosted_providers() {
        let local = ["local/SmolLM2-135M-Instruct.Q4_1".to_string()];
        let cat = ModelCatalogue::new(vec![Provider::Local], &local, None);
        assert_eq!(provider_of("local/SmolLM2-135M-Instruct.Q4_1"), (Provider::Local, "SmolLM2-135M-Instruct.Q4_1"));
        assert!(cat.accepts("local/SmolLM2-135M-Instruct.Q4_1"));
        assert!(!cat.accepts("local/other"));
        assert_eq!(cat.default_model.as_deref(), Some("local/SmolLM2-135M-Instruct.Q4_1"));
        let groups = cat.groups();
        let g = groups.iter().find(|g| g.provider == "local").expect("a Local group");
        assert_eq!(g.group_label, "Local");
        assert_eq!(g.options.len(), 1);
        assert_eq!(g.options[0].value, "local/SmolLM2-135M-Instruct.Q4_1");
        assert_eq!(g.options[0].status, "available");
        // A hosted provider stays the default; no Local group without local models.
        let cat = ModelCatalogue::new(vec![Provider::OpenAi, Provider::Local], &local, None);
        assert_eq!(cat.default_model.as_deref(), Some("openai/gpt-4o-mini"));
        let cat = ModelCatalogue::new(vec![Provider::OpenAi], &[], None);
        assert!(cat.groups().iter().all(|g| g.provider != "local"));
    }
}
