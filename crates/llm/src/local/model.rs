//! One loaded GGUF model and its generation loop.

use super::grammar::{compile_tools, Part, ToolCallMachine};
use super::prompt::{self, Piece};
use crate::error::LlmError;
use crate::types::{ChatEvent, ChatRequest, ToolCall, Usage};
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::{ModelWeights, MAX_SEQ_LEN};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokenizers::Tokenizer;

/// Where a generation sends its events.
pub(crate) type Sender = tokio::sync::mpsc::UnboundedSender<Result<ChatEvent, LlmError>>;

/// `max_tokens` when the request sets none.
pub const DEFAULT_MAX_TOKENS: u32 = 512;
/// Tokens considered when sampling with a temperature.
const TOP_K: usize = 40;

/// What a token stands for.
#[derive(Debug, Clone)]
pub(crate) struct TokenText {
    pub bytes: Vec<u8>,
    /// The bytes as UTF-8 when they are valid on their own.
    pub text: Option<String>,
    /// Control tokens (`<|im_end|>`, …): never written as text.
    pub special: bool,
}

/// A loaded model: the weights (shared by every generation, each of which gets
/// its own KV cache) and the tokenizer.
pub struct LoadedModel {
    pub name: String,
    weights: ModelWeights,
    tokenizer: Tokenizer,
    pub(crate) vocab: Vec<TokenText>,
    im_start: u32,
    im_end: u32,
    /// Tokens that end the answer.
    stop: Vec<u32>,
    pub context_length: usize,
    pub(crate) default_system: Option<&'static str>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel").field("name", &self.name).field("vocab", &self.vocab.len()).field("context_length", &self.context_length).finish()
    }
}

const SMOLLM_DEFAULT_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// GPT-2's byte ↔ printable-character table, inverted: character → byte.
fn byte_decoder() -> std::collections::HashMap<char, u8> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut chars = printable.clone();
    let mut n = 0;
    for b in 0..=255u32 {
        if !printable.contains(&b) {
            printable.push(b);
            chars.push(256 + n);
            n += 1;
        }
    }
    printable.iter().zip(chars).filter_map(|(&b, c)| Some((char::from_u32(c)?, b as u8))).collect()
}

/// Weight types candle multiplies with scalar code only: converted to Q8_0 (which
/// has SIMD kernels; 8 bits represent their 16 or 32 levels almost exactly) at load.
fn needs_requantizing(t: GgmlDType) -> bool {
    matches!(t, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

fn load_weights(ct: gguf_file::Content, file: &mut std::fs::File) -> candle_core::Result<ModelWeights> {
    let cpu = Device::Cpu;
    if !ct.tensor_infos.values().any(|t| needs_requantizing(t.ggml_dtype)) {
        return ModelWeights::from_gguf(ct, file, &cpu);
    }
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(ct.tensor_infos.len());
    let mut names: Vec<&String> = ct.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let q = ct.tensor(file, name, &cpu)?;
        let q = if needs_requantizing(q.dtype()) { QTensor::quantize(&q.dequantize(&cpu)?, GgmlDType::Q8_0)? } else { q };
        tensors.push((name.clone(), q));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = ct.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut buf = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut buf, &metadata, &refs)?;
    drop(tensors);
    buf.set_position(0);
    let converted = gguf_file::Content::read(&mut buf)?;
    ModelWeights::from_gguf(converted, &mut buf, &cpu)
}

fn md<'a>(ct: &'a gguf_file::Content, key: &str) -> Option<&'a gguf_file::Value> {
    ct.metadata.get(key)
}

fn md_u32(ct: &gguf_file::Content, key: &str) -> Option<u32> {
    let v = md(ct, key)?;
    v.to_u32().ok().or_else(|| v.to_i32().ok().map(|x| x as u32)).or_else(|| v.to_u64().ok().map(|x| x as u32))
}

impl LoadedModel {
    /// Loads `path`; the model is named after the file stem.
    pub fn load(path: &Path) -> Result<LoadedModel, String> {
        let name = path.file_stem().and_then(|s| s.to_str()).filter(|s| !s.is_empty()).ok_or_else(|| format!("{}: no usable file name", path.display()))?;
        let mut file = std::fs::File::open(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
        let ct = gguf_file::Content::read(&mut file).map_err(|e| format!("{}: not a readable GGUF file: {e}", path.display()))?;
        let arch = md(&ct, "general.architecture").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
        if arch != "llama" {
            return Err(format!("{}: architecture {arch:?} is not supported (only llama-architecture GGUF models, e.g. SmolLM2, Llama 3)", path.display()));
        }
        let tokens: Vec<String> = md(&ct, "tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .map(|a| a.iter().map(|t| t.to_string().cloned().unwrap_or_default()).collect())
            .ok_or_else(|| format!("{}: the GGUF metadata has no tokenizer.ggml.tokens", path.display()))?;
        let types: Vec<u32> = md(&ct, "tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok())
            .map(|a| a.iter().map(|t| t.to_i32().map(|x| x as u32).or_else(|_| t.to_u32()).unwrap_or(1)).collect())
            .unwrap_or_default();
        let find = |t: &str| tokens.iter().position(|x| x == t).map(|i| i as u32);
        let template = md(&ct, "tokenizer.chat_template").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
        let (Some(im_start), Some(im_end)) = (find("<|im_start|>"), find("<|im_end|>")) else {
            return Err(format!(
                "{}: only ChatML models (<|im_start|> … <|im_end|>) are supported; this model's vocabulary has no ChatML tokens",
                path.display()
            ));
        };
        if !template.is_empty() && !template.contains("<|im_start|>") {
            return Err(format!("{}: only ChatML chat templates are supported; this model's tokenizer.chat_template is another format", path.display()));
        }
        let decoder = byte_decoder();
        let vocab: Vec<TokenText> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let special = matches!(types.get(i), Some(3));
                let bytes: Vec<u8> = if special {
                    t.as_bytes().to_vec()
                } else {
                    let mut out = Vec::with_capacity(t.len());
                    for c in t.chars() {
                        match decoder.get(&c) {
                            Some(b) => out.push(*b),
                            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                        }
                    }
                    out
                };
                let text = String::from_utf8(bytes.clone()).ok();
                TokenText { bytes, text, special }
            })
            .collect();
        let mut stop = vec![im_end];
        if let Some(eos) = md_u32(&ct, "tokenizer.ggml.eos_token_id") {
            stop.push(eos);
        }
        let mut vocab = vocab;
        for id in stop.iter().chain([&im_start]) {
            if let Some(t) = vocab.get_mut(*id as usize) {
                t.special = true;
            }
        }
        let context_length = md_u32(&ct, "llama.context_length").map(|c| c as usize).unwrap_or(MAX_SEQ_LEN).min(MAX_SEQ_LEN);
        let mut tokenizer = Tokenizer::from_gguf(&ct).map_err(|e| format!("{}: cannot build the tokenizer: {e}", path.display()))?;
        // Special tokens in message text stay text; the template inserts them by id.
        tokenizer.set_encode_special_tokens(true);
        let weights = load_weights(ct, &mut file).map_err(|e| format!("{}: cannot load the weights: {e}", path.display()))?;
        let default_system = template.contains(SMOLLM_DEFAULT_SYSTEM).then_some(SMOLLM_DEFAULT_SYSTEM);
        Ok(LoadedModel { name: name.to_string(), weights, tokenizer, vocab, im_start, im_end, stop, context_length, default_system })
    }

    /// The prompt's token ids.
    pub(crate) fn encode(&self, pieces: &[Piece]) -> Result<Vec<u32>, LlmError> {
        let mut ids = Vec::new();
        for p in pieces {
            match p {
                Piece::ImStart => ids.push(self.im_start),
                Piece::ImEnd => ids.push(self.im_end),
                Piece::Text(t) => {
                    let enc = self
                        .tokenizer
                        .encode(t.as_str(), false)
                        .map_err(|e| LlmError::provider(format!("local model {}: cannot tokenize the prompt: {e}", self.name)))?;
                    ids.extend_from_slice(enc.get_ids());
                }
            }
        }
        Ok(ids)
    }

    /// Runs one generation, sending events to `tx`. Once the receiver is gone,
    /// generation stops before the next token.
    pub(crate) fn generate(&self, req: &ChatRequest, tx: &Sender, call_no: usize, tokens: &AtomicUsize, force_tool: bool) -> Result<(), LlmError> {
        let emit = |ev: ChatEvent| tx.send(Ok(ev)).is_ok();
        let err = |what: &str, e: candle_core::Error| LlmError::provider(format!("local model {}: {what}: {e}", self.name));
        let pieces = prompt::render(req, self.default_system);
        let ids = self.encode(&pieces)?;
        let max_tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS) as usize;
        if ids.len() + 1 > self.context_length {
            return Err(LlmError::provider(format!(
                "local model {}: the prompt has {} tokens, more than the context window of {}",
                self.name,
                ids.len(),
                self.context_length
            )));
        }
        let budget = max_tokens.min(self.context_length - ids.len());
        let temperature = req.temperature.filter(|t| *t > 0.0);
        let mut rng = StdRng::from_entropy();
        let tools = compile_tools(req.tools.iter().map(|t| (t.name.as_str(), &t.parameters)));
        let mut mode = if tools.is_empty() {
            Mode::Text
        } else if force_tool {
            Mode::Tool(ToolCallMachine::new(tools.clone()))
        } else {
            Mode::Undecided
        };
        let mut utf8 = Utf8Stream::default();
        let mut weights = self.weights.clone();
        let input = Tensor::new(ids.as_slice(), &Device::Cpu).and_then(|t| t.unsqueeze(0)).map_err(|e| err("prompt tensor", e))?;
        let mut logits = weights.forward(&input, 0).map_err(|e| err("forward pass", e))?;
        let mut pos = ids.len();
        let mut generated = 0usize;
        let mut tool_text = String::new();
        let mut call_name: Option<String> = None;
        let mut args_sent = 0usize;
        let call_id = format!("call_local_{call_no}");
        let finish: &str;
        loop {
            if generated >= budget {
                if let Mode::Tool(_) = mode {
                    return Err(LlmError::provider(format!(
                        "local model {}: the tool call did not fit in max_tokens={max_tokens}; raise max_tokens",
                        self.name
                    )));
                }
                finish = "length";
                break;
            }
            let row: Vec<f32> = logits.squeeze(0).and_then(|l| l.to_dtype(candle_core::DType::F32)).and_then(|l| l.to_vec1()).map_err(|e| err("logits", e))?;
            let token = match &mode {
                Mode::Tool(m) => self.pick_constrained(&row, m, temperature, &mut rng),
                _ => Some(pick(&row, temperature, &mut rng, |_| true)),
            };
            let Some(token) = token else {
                return Err(LlmError::provider(format!("local model {}: no token continues the tool call", self.name)));
            };
            generated += 1;
            tokens.fetch_add(1, Ordering::Relaxed);
            let Some(tt) = self.vocab.get(token as usize) else {
                return Err(LlmError::provider(format!("local model {}: token {token} is outside the vocabulary", self.name)));
            };
            if let Mode::Undecided = mode {
                let fresh = ToolCallMachine::new(tools.clone());
                mode = match tt.text.as_deref() {
                    Some(t) if !tt.special && !t.is_empty() && fresh.accepts(t) => Mode::Tool(fresh),
                    _ => Mode::Text,
                };
            }
            match &mut mode {
                Mode::Tool(m) => {
                    let text = tt.text.clone().unwrap_or_default();
                    for c in text.chars() {
                        let in_args = m.part() == Part::Arguments;
                        if !m.push(c) {
                            return Err(LlmError::provider(format!(
                                "local model {}: internal error: the tool-call grammar rejected a chosen token",
                                self.name
                            )));
                        }
                        if in_args {
                            tool_text.push(c);
                        }
                        if call_name.is_none() {
                            if let Some(name) = m.tool_name() {
                                call_name = Some(name.to_string());
                                if !emit(ChatEvent::ToolCallStart { id: call_id.clone(), name: name.to_string() }) {
                                    return Ok(());
                                }
                            }
                        }
                    }
                    if tool_text.len() > args_sent {
                        let delta = tool_text[args_sent..].to_string();
                        args_sent = tool_text.len();
                        if !emit(ChatEvent::ToolCallArgsDelta { id: call_id.clone(), delta }) {
                            return Ok(());
                        }
                    }
                    if m.is_done() {
                        finish = "tool_calls";
                        break;
                    }
                }
                _ => {
                    if tt.special || self.stop.contains(&token) {
                        finish = "stop";
                        break;
                    }
                    let out = utf8.push(&tt.bytes);
                    if !out.is_empty() && !emit(ChatEvent::TextDelta(out)) {
                        return Ok(());
                    }
                }
            }
            if tx.is_closed() {
                return Ok(());
            }
            let input = Tensor::new(&[token], &Device::Cpu).and_then(|t| t.unsqueeze(0)).map_err(|e| err("token tensor", e))?;
            logits = weights.forward(&input, pos).map_err(|e| err("forward pass", e))?;
            pos += 1;
        }
        let rest = utf8.finish();
        if !rest.is_empty() && !emit(ChatEvent::TextDelta(rest)) {
            return Ok(());
        }
        if finish == "tool_calls" {
            let name = call_name.unwrap_or_default();
            let arguments = crate::types::parse_tool_arguments(&tool_text);
            if !emit(ChatEvent::ToolCallDone(ToolCall { id: call_id, name, arguments })) {
                return Ok(());
            }
        }
        let usage = Usage { input_tokens: ids.len() as u64, output_tokens: generated as u64, ..Default::default() };
        if emit(ChatEvent::Usage(usage)) {
            emit(ChatEvent::Finish { reason: finish.to_string() });
        }
        Ok(())
    }

    /// The best (greedy) or a sampled token among those the grammar accepts.
    fn pick_constrained(&self, logits: &[f32], m: &ToolCallMachine, temperature: Option<f64>, rng: &mut StdRng) -> Option<u32> {
        let mut order: Vec<u32> = (0..logits.len() as u32).collect();
        order.sort_unstable_by(|a, b| logits[*b as usize].total_cmp(&logits[*a as usize]));
        let want = if temperature.is_some() { TOP_K } else { 1 };
        let mut found: Vec<u32> = Vec::with_capacity(want);
        for id in order {
            let Some(tt) = self.vocab.get(id as usize) else { continue };
            match tt.text.as_deref() {
                Some(t) if !tt.special && !t.is_empty() && m.accepts(t) => found.push(id),
                _ => continue,
            }
            if found.len() >= want {
                break;
            }
        }
        match temperature {
            None => found.first().copied(),
            Some(_) => {
                let set: std::collections::HashSet<u32> = found.iter().copied().collect();
                if set.is_empty() {
                    return None;
                }
                Some(pick(logits, temperature, rng, |id| set.contains(&id)))
            }
        }
    }
}

enum Mode {
    /// Tools are offered and nothing was generated yet: the first token decides.
    Undecided,
    Text,
    Tool(ToolCallMachine),
}

/// Greedy (no temperature) or top-k sampling among the tokens `allowed` admits.
fn pick(logits: &[f32], temperature: Option<f64>, rng: &mut StdRng, allowed: impl Fn(u32) -> bool) -> u32 {
    let Some(t) = temperature else {
        let mut best = (0u32, f32::NEG_INFINITY);
        for (i, &l) in logits.iter().enumerate() {
            if l > best.1 && allowed(i as u32) {
                best = (i as u32, l);
            }
        }
        return best.0;
    };
    let mut top: Vec<(u32, f32)> = logits.iter().enumerate().filter(|(i, _)| allowed(*i as u32)).map(|(i, &l)| (i as u32, l)).collect();
    top.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(TOP_K);
    let Some(&(first, max)) = top.first() else {
        return 0;
    };
    let weights: Vec<f64> = top.iter().map(|(_, l)| (((*l - max) as f64) / t).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut r = rng.gen::<f64>() * total;
    for ((id, _), w) in top.iter().zip(&weights) {
        if r < *w {
            return *id;
        }
        r -= w;
    }
    first
}

/// Turns token bytes into text without ever splitting a UTF-8 character.
#[derive(Debug, Default)]
pub(crate) struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// The complete characters available after appending `bytes` (invalid
    /// sequences become U+FFFD; an incomplete tail is kept for later).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // The prefix is valid UTF-8 by construction.
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + n);
                        }
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                    }
                }
            }
        }
    }

    /// Whatever is left (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_stream_never_splits_characters() {
        let mut s = Utf8Stream::default();
        let e = "é€😀".as_bytes();
        let mut out = Vec::new();
        for b in e {
            out.push(s.push(&[*b]));
        }
        assert_eq!(out.concat(), "é€😀");
        assert!(out.iter().all(|piece| piece.is_empty() || piece.chars().count() == 1));
        assert_eq!(s.push(&[0xff, b'a']), "\u{FFFD}a");
        assert_eq!(s.push(&[0xe2, 0x82]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
    }

    #[test]
    fn byte_decoder_is_gpt2s() {
        let d = byte_decoder();
        assert_eq!(d.len(), 256);
        assert_eq!(d[&'Ġ'], b' ');
        assert_eq!(d[&'Ċ'], b'\n');
        assert_eq!(d[&'a'], b'a');
    }
}
