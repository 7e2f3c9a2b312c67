//! `Providers` routing rule, exercised over HTTP against the fake servers.

mod common;

use common::*;
use llm::{ErrorClass, ProviderCredentials, Providers, ProvidersConfig, RetryPolicy};
use std::time::Duration;
use testkit::fake_llm::FakeLlm;

fn all_configured(fake: &FakeLlm) -> Providers {
    Providers::new(ProvidersConfig {
        openai: Some(ProviderCredentials { api_key: Some(OPENAI_KEY.into()), base_url: Some(fake.openai_base_url()) }),
        anthropic: Some(ProviderCredentials { api_key: Some(ANTHROPIC_KEY.into()), base_url: Some(fake.base_url()) }),
        ollama_host: Some(fake.base_url()),
        request_timeout: Duration::from_secs(10),
        retry: RetryPolicy::default(),
        ..Default::default()
    })
}

#[tokio::test]
async fn model_names_route_to_the_right_provider() {
    let fake = FakeLlm::start().await;
    let providers = all_configured(&fake);
    let cases = [
        ("openai/gpt-4o", "/v1/chat/completions", "gpt-4o", Some("bearer")),
        ("gpt-4o-mini", "/v1/chat/completions", "gpt-4o-mini", Some("bearer")),
        ("o1-mini", "/v1/chat/completions", "o1-mini", Some("bearer")),
        ("o3", "/v1/chat/completions", "o3", Some("bearer")),
        ("o4-mini", "/v1/chat/completions", "o4-mini", Some("bearer")),
        ("anthropic/claude-3-haiku", "/v1/messages", "claude-3-haiku", Some("x-api-key")),
        ("claude-opus-4", "/v1/messages", "claude-opus-4", Some("x-api-key")),
        ("ollama/llama3.2:1b", "/v1/chat/completions", "llama3.2:1b", None),
        ("Qwen/Qwen2.5-0.5B", "/v1/chat/completions", "Qwen/Qwen2.5-0.5B", Some("bearer")),
    ];
    for (i, (name, path, native, auth)) in cases.into_iter().enumerate() {
        let (model, native_id) = providers.resolve(name).unwrap();
        assert_eq!(native_id, native, "{name}");
        let ev = ok_events(model.as_ref(), req(&native_id, name)).await;
        assert_eq!(text_of(&ev), format!("ok: {name}"));
        let rec = &fake.recorded()[i];
        assert_eq!(rec.path, path, "{name}");
        assert_eq!(rec.body["model"], native, "{name}");
        match auth {
            Some("bearer") => assert_eq!(rec.headers.get("authorization").cloned(), Some(format!("Bearer {OPENAI_KEY}")), "{name}"),
            Some(_) => assert_eq!(rec.headers.get("x-api-key").map(String::as_str), Some(ANTHROPIC_KEY), "{name}"),
            None => {
                assert!(!rec.headers.contains_key("authorization"), "{name}");
                assert!(!rec.headers.contains_key("x-api-key"), "{name}");
            }
        }
    }
}

#[tokio::test]
async fn unconfigured_providers() {
    let fake = FakeLlm::start().await;
    // OpenAI configured through a custom base URL only (local server, no key).
    let providers =
        Providers::new(ProvidersConfig { openai: Some(ProviderCredentials { api_key: None, base_url: Some(fake.openai_base_url()) }), ..Default::default() });
    for name in ["claude-3-haiku", "anthropic/x", "ollama/llama3"] {
        let err = providers.resolve(name).err().expect(name);
        assert_eq!(err.class, ErrorClass::ProviderNotConfigured, "{name}");
        assert!(err.to_string().starts_with("ProviderNotConfigured: "));
    }
    let (model, id) = providers.resolve("local-llama").unwrap();
    let ev = ok_events(model.as_ref(), req(&id, "hi")).await;
    assert_eq!(text_of(&ev), "ok: hi");
    assert!(!fake.recorded()[0].headers.contains_key("authorization"));

    let nothing = Providers::new(ProvidersConfig::default());
    assert_eq!(nothing.resolve("gpt-4o").err().unwrap().class, ErrorClass::ProviderNotConfigured);
    assert_eq!(Providers::provider_name("gpt-4o"), "openai");
    assert_eq!(Providers::provider_name("claude-3"), "anthropic");
    assert_eq!(Providers::provider_name("ollama/x"), "ollama");
    assert_eq!(Providers::provider_name("whatever"), "openai");
}

#[tokio::test]
async fn ollama_models_are_listed_through_v1() {
    let fake = FakeLlm::start().await;
    fake.set_models(vec!["llama3.2:1b".into()]);
    let providers = all_configured(&fake);
    let models = providers.ollama().unwrap().list_models().await.unwrap();
    assert_eq!(models, ["llama3.2:1b"]);
}
