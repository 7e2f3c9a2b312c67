//! Tokens/s of the `local` provider (used by bench/llamacpp/run.py).
//!
//! `local_bench GGUF PROMPT MAX_TOKENS [RUNS]`: loads the model once, then runs
//! RUNS greedy generations of the ChatML prompt `PROMPT` (one user message) and
//! prints one JSON line per run: completion tokens, seconds to the first token,
//! total seconds, and tokens/s over the whole generation.

use futures::StreamExt;
use llm::{ChatEvent, ChatMessage, ChatModel, ChatRequest, LocalConfig, LocalModels};
use std::path::PathBuf;
use std::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: local_bench GGUF PROMPT MAX_TOKENS [RUNS]".into());
    }
    let path = PathBuf::from(&args[1]);
    let max_tokens: u32 = args[3].parse().map_err(|e| format!("MAX_TOKENS: {e}"))?;
    let runs: usize = args.get(4).map(|r| r.parse()).transpose().map_err(|e| format!("RUNS: {e}"))?.unwrap_or(1);
    let name = path.file_stem().and_then(|s| s.to_str()).ok_or("GGUF: no file name")?.to_string();
    let models = LocalModels::load(&LocalConfig { models: vec![path], pool_size: 1, ..Default::default() })?;
    for _ in 0..runs {
        let req = ChatRequest { model: name.clone(), messages: vec![ChatMessage::user(args[2].clone())], max_tokens: Some(max_tokens), ..Default::default() };
        let started = Instant::now();
        let mut first = None;
        let mut tokens = 0;
        let mut stream = models.stream(req).await.map_err(|e| e.to_string())?;
        while let Some(ev) = stream.next().await {
            match ev.map_err(|e| e.to_string())? {
                ChatEvent::TextDelta(_) if first.is_none() => first = Some(started.elapsed().as_secs_f64()),
                ChatEvent::Usage(u) => tokens = u.output_tokens,
                _ => {}
            }
        }
        let total = started.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({"completion_tokens": tokens, "first_token_s": first.unwrap_or(total), "total_s": total, "tokens_per_s": tokens as f64 / total})
        );
    }
    Ok(())
}
