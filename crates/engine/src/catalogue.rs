//! The model catalogue behind `GET /models` (M1) and model-name validation (G2/G4).

use wire::tenancy::{ModelGroup, ModelOption};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Ollama,
}

impl Provider {
    pub fn key(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Ollama => "ollama",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Provider::OpenAi => "OpenAI",
            Provider::Anthropic => "Anthropic",
            Provider::Ollama => "Ollama",
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
    if model_name.starts_with("claude-") {
        return (Provider::Anthropic, model_name);
    }
    (Provider::OpenAi, model_name)
}

#[derive(Debug, Clone, Default)]
pub struct ModelCatalogue {
    /// (provider, model id without prefix)
    entries: Vec<(Provider, String)>,
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
        let mut cat = ModelCatalogue { entries, available, default_model: None };
        cat.default_model = default_model.or_else(|| {
            let candidates = [(Provider::OpenAi, "gpt-4o-mini"), (Provider::Anthropic, "claude-3-5-haiku-latest")];
            candidates
                .iter()
                .find(|(p, _)| cat.available.contains(p))
                .map(|(p, m)| format!("{}/{m}", p.key()))
                .or_else(|| cat.entries.iter().find(|(p, _)| *p == Provider::Ollama && cat.available.contains(p)).map(|(p, m)| format!("{}/{m}", p.key())))
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
        self.entries.iter().any(|(ep, em)| *ep == p && em == m)
    }

    pub fn groups(&self) -> Vec<ModelGroup> {
        let mut groups = Vec::new();
        for p in [Provider::OpenAi, Provider::Anthropic, Provider::Ollama] {
            let status = if self.available.contains(&p) { "available" } else { "unavailable" };
            let options: Vec<ModelOption> = self
                .entries
                .iter()
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
