//! The `local` provider: GGUF models run in-process on the CPU (candle).
//!
//! * Models are loaded once from the configured files and named after the file
//!   stem: `/models/SmolLM2-135M-Instruct.Q4_1.gguf` is `local/SmolLM2-135M-Instruct.Q4_1`.
//!   Only llama-architecture models with a ChatML chat template are supported.
//! * Generations run on a bounded pool of dedicated OS threads (never on tokio
//!   workers): at most `pool_size` at once, the others wait in line. The weights
//!   are shared; every generation has its own KV cache.
//! * Temperature absent or `0` → greedy (deterministic); otherwise top-40
//!   sampling. `max_tokens` defaults to [`DEFAULT_MAX_TOKENS`].
//! * Dropping the [`ChatStream`] stops the generation before its next token (a
//!   request still waiting in line is skipped).
//! * With tools, the prompt describes them Hermes-style and decoding is
//!   constrained (see [`grammar`]): the first token decides between text and
//!   `<tool_call>`; a call is always a valid `{"name", "arguments"}` object for
//!   one of the offered tools. One call per answer; ids are `call_local_<n>`.
//!   [`ToolChoice::Required`] makes the answer to a user message a tool call.

pub mod grammar;
mod model;
mod prompt;

pub use model::DEFAULT_MAX_TOKENS;

use crate::error::LlmError;
use crate::types::{ChatMessage, ChatRequest, ChatStream};
use crate::ChatModel;
use async_trait::async_trait;
use model::LoadedModel;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

/// Configuration of [`LocalModels`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalConfig {
    /// GGUF files to load.
    pub models: Vec<PathBuf>,
    /// Generations run at once (at least 1).
    pub pool_size: usize,
    pub tool_choice: ToolChoice,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig { models: Vec::new(), pool_size: 1, tool_choice: ToolChoice::Auto }
    }
}

/// Whether a local model must call a tool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model's first token decides between text and a tool call.
    #[default]
    Auto,
    /// When tools are offered and the last message is the user's, the answer is
    /// a tool call (decoding starts inside `<tool_call>`); after a tool result
    /// the model chooses as with `Auto`. For small models that rarely start a
    /// call on their own.
    Required,
}

impl std::str::FromStr for ToolChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            other => Err(format!("{other:?} must be auto or required")),
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Dedicated generation threads fed from one queue.
struct Pool {
    tx: mpsc::Sender<Job>,
    size: usize,
}

impl Pool {
    fn new(size: usize) -> Result<Pool, String> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..size {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("openloop-local-{i}"))
                .spawn(move || loop {
                    // A poisoned lock only means another worker panicked while
                    // waiting; the receiver itself is still usable.
                    let job = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(poisoned) => poisoned.into_inner().recv(),
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
                .map_err(|e| format!("cannot start a local-model thread: {e}"))?;
        }
        Ok(Pool { tx, size })
    }
}

/// The loaded local models and their generation pool.
pub struct LocalModels {
    models: Vec<Arc<LoadedModel>>,
    pool: Pool,
    tool_choice: ToolChoice,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    next_call: Arc<AtomicUsize>,
    tokens: Arc<AtomicUsize>,
}

impl std::fmt::Debug for LocalModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModels").field("models", &self.names()).field("pool_size", &self.pool.size).finish()
    }
}

impl LocalModels {
    /// Loads every file of `cfg.models`. The error names the file and the problem.
    pub fn load(cfg: &LocalConfig) -> Result<LocalModels, String> {
        let mut models: Vec<Arc<LoadedModel>> = Vec::new();
        for path in &cfg.models {
            let m = LoadedModel::load(path)?;
            if models.iter().any(|x| x.name == m.name) {
                return Err(format!("{}: another local model is already named {:?} (model names are file stems)", path.display(), m.name));
            }
            tracing::info!(model = %format!("local/{}", m.name), path = %path.display(), "loaded local model");
            models.push(Arc::new(m));
        }
        Ok(LocalModels {
            models,
            pool: Pool::new(cfg.pool_size.max(1))?,
            tool_choice: cfg.tool_choice,
            running: Arc::default(),
            peak: Arc::default(),
            next_call: Arc::default(),
            tokens: Arc::default(),
        })
    }

    /// The model names, `local/<file stem>`, in configuration order.
    pub fn names(&self) -> Vec<String> {
        self.models.iter().map(|m| format!("local/{}", m.name)).collect()
    }

    /// Whether `name` (a file stem, without `local/`) is loaded.
    pub fn contains(&self, name: &str) -> bool {
        self.models.iter().any(|m| m.name == name)
    }

    /// Generations running right now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// The most generations that ever ran at once (at most the pool size).
    pub fn peak_running(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Tokens generated so far, by all generations.
    pub fn tokens_generated(&self) -> usize {
        self.tokens.load(Ordering::SeqCst)
    }

    pub fn pool_size(&self) -> usize {
        self.pool.size
    }
}

#[async_trait]
impl ChatModel for LocalModels {
    async fn stream(&self, req: ChatRequest) -> Result<ChatStream, LlmError> {
        let Some(model) = self.models.iter().find(|m| m.name == req.model).cloned() else {
            return Err(LlmError::not_configured(format!("no local model named {:?} is loaded (loaded: {})", req.model, self.names().join(", "))));
        };
        let force_tool = self.tool_choice == ToolChoice::Required && !req.tools.is_empty() && matches!(req.messages.last(), Some(ChatMessage::User { .. }));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (running, peak, tokens) = (self.running.clone(), self.peak.clone(), self.tokens.clone());
        let call_no = self.next_call.fetch_add(1, Ordering::SeqCst);
        let job: Job = Box::new(move || {
            if tx.is_closed() {
                return;
            }
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.generate(&req, &tx, call_no, &tokens, force_tool)));
            running.fetch_sub(1, Ordering::SeqCst);
            let failure = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some(LlmError::provider(format!("local model {}: the generation thread panicked", model.name))),
            };
            if let Some(e) = failure {
                let _ = tx.send(Err(e));
            }
        });
        self.pool.tx.send(job).map_err(|_| LlmError::provider("the local-model threads have stopped"))?;
        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
        Ok(Box::pin(stream))
    }
}
