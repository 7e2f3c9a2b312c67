//! Wire encodings of scripted replies (OpenAI Chat Completions and Anthropic
//! Messages), streamed and not.

use super::{FakeUsage, Reply};
use axum::body::Bytes;
use serde_json::{json, Map, Value};

/// Which provider format a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
}

pub(crate) struct Ctx<'a> {
    pub wire: Wire,
    pub model: &'a str,
    pub seq: usize,
    pub text: Option<&'a str>,
    pub reply: &'a Reply,
    pub include_usage: bool,
}

/// SSE frames of a streamed reply.
pub(crate) struct Plan {
    pub frames: Vec<Bytes>,
    /// Indexes of content frames (text / reasoning / tool deltas).
    content: Vec<usize>,
    /// Index of the first frame after the content (finish, usage, done).
    trailer_start: usize,
}

impl Plan {
    /// Number of frames to send so that exactly `k` content frames go out
    /// (everything before the finish events when `k` covers all content).
    pub fn cut_index(&self, k: usize) -> usize {
        self.content.get(k).copied().unwrap_or(self.trailer_start)
    }
}

/// The last user message's text (string content or text parts; Anthropic
/// `tool_result` blocks are skipped).
pub(crate) fn last_user_text(req: &Value) -> String {
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return String::new();
    };
    for m in messages.iter().rev() {
        if m.get("role").and_then(Value::as_str) != Some("user") {
            continue;
        }
        let text = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter(|p| matches!(p.get("type").and_then(Value::as_str), Some("text") | Some("input_text")))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        };
        if !text.is_empty() {
            return text;
        }
    }
    String::new()
}

/// Splits `s` into at most `n` non-empty pieces of near-equal length.
pub(crate) fn split_chunks(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let n = n.clamp(1, chars.len());
    let (base, extra) = (chars.len() / n, chars.len() % n);
    let mut out = Vec::with_capacity(n);
    let mut pos = 0;
    for i in 0..n {
        let len = base + usize::from(i < extra);
        out.push(chars[pos..pos + len].iter().collect());
        pos += len;
    }
    out
}

fn error_type(wire: Wire, status: u16) -> &'static str {
    match (wire, status) {
        (_, 400) | (_, 422) => "invalid_request_error",
        (_, 401) => "authentication_error",
        (_, 403) => "permission_error",
        (_, 404) => "not_found_error",
        (_, 429) => "rate_limit_error",
        (Wire::Anthropic, 529) => "overloaded_error",
        (Wire::Anthropic, _) => "api_error",
        (Wire::OpenAi, _) => "server_error",
    }
}

pub(crate) fn error_body(wire: Wire, status: u16, message: &str) -> Value {
    let kind = error_type(wire, status);
    match wire {
        Wire::OpenAi => {
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
        Wire::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
    }
}

fn openai_usage(u: &FakeUsage) -> Value {
    json!({
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.input + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cached},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
    })
}

fn tool_id(ctx: &Ctx<'_>, i: usize) -> String {
    match ctx.wire {
        Wire::OpenAi => format!("call_{}_{i}", ctx.seq),
        Wire::Anthropic => format!("toolu_{}_{i}", ctx.seq),
    }
}

fn has_tools(ctx: &Ctx<'_>) -> bool {
    !ctx.reply.tool_calls.is_empty()
}

/// Complete non-streaming response body.
pub(crate) fn json_body(ctx: &Ctx<'_>) -> Value {
    let r = ctx.reply;
    match ctx.wire {
        Wire::OpenAi => {
            let mut msg = Map::new();
            msg.insert("role".into(), json!("assistant"));
            msg.insert("content".into(), json!(ctx.text));
            if let Some(reasoning) = &r.reasoning {
                msg.insert("reasoning_content".into(), json!(reasoning));
            }
            if has_tools(ctx) {
                let calls: Vec<Value> = r
                    .tool_calls
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        json!({"id": tool_id(ctx, i), "type": "function",
                               "function": {"name": c.name, "arguments": c.raw_arguments}})
                    })
                    .collect();
                msg.insert("tool_calls".into(), Value::Array(calls));
            }
            let finish = if r.null_finish_reason {
                Value::Null
            } else if has_tools(ctx) {
                json!("tool_calls")
            } else {
                json!("stop")
            };
            let mut body = json!({
                "id": format!("chatcmpl-fake-{}", ctx.seq),
                "object": "chat.completion",
                "created": 0,
                "model": ctx.model,
                "choices": [{"index": 0, "message": Value::Object(msg), "finish_reason": finish}],
            });
            if let Some(u) = &r.usage {
                body["usage"] = openai_usage(u);
            }
            body
        }
        Wire::Anthropic => {
            let mut content = Vec::new();
            if let Some(reasoning) = &r.reasoning {
                content.push(json!({"type": "thinking", "thinking": reasoning, "signature": "fake-signature"}));
            }
            if let Some(t) = ctx.text {
                content.push(json!({"type": "text", "text": t}));
            }
            for (i, c) in r.tool_calls.iter().enumerate() {
                let input: Value = serde_json::from_str(&c.raw_arguments).unwrap_or_else(|_| json!({}));
                content.push(json!({"type": "tool_use", "id": tool_id(ctx, i), "name": c.name, "input": input}));
            }
            let mut body = json!({
                "id": format!("msg_fake_{}", ctx.seq),
                "type": "message",
                "role": "assistant",
                "model": ctx.model,
                "content": content,
                "stop_reason": if has_tools(ctx) { "tool_use" } else { "end_turn" },
                "stop_sequence": null,
            });
            if let Some(u) = &r.usage {
                body["usage"] = anthropic_usage(u, u.output);
            }
            body
        }
    }
}

fn anthropic_usage(u: &FakeUsage, output: u64) -> Value {
    json!({
        "input_tokens": u.input.saturating_sub(u.cached),
        "cache_read_input_tokens": u.cached,
        "cache_creation_input_tokens": 0,
        "output_tokens": output,
    })
}

#[derive(Default)]
struct Frames {
    frames: Vec<Bytes>,
    content: Vec<usize>,
}

impl Frames {
    fn push(&mut self, frame: String, is_content: bool) {
        if is_content {
            self.content.push(self.frames.len());
        }
        self.frames.push(Bytes::from(frame));
    }

    fn trailer(&self) -> usize {
        self.frames.len()
    }
}

/// SSE frames of a streamed response.
pub(crate) fn sse_frames(ctx: &Ctx<'_>) -> Plan {
    let mut f = Frames::default();
    let trailer_start = match ctx.wire {
        Wire::OpenAi => openai_frames(ctx, &mut f),
        Wire::Anthropic => anthropic_frames(ctx, &mut f),
    };
    Plan { frames: f.frames, content: f.content, trailer_start }
}

fn openai_frames(ctx: &Ctx<'_>, f: &mut Frames) -> usize {
    let r = ctx.reply;
    let id = format!("chatcmpl-fake-{}", ctx.seq);
    let envelope = |choices: Value| json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": ctx.model, "choices": choices});
    let mut first = true;
    let mut delta_frame = |f: &mut Frames, mut delta: Value| {
        if first {
            delta["role"] = json!("assistant");
            first = false;
        }
        let chunk = envelope(json!([{"index": 0, "delta": delta, "finish_reason": null}]));
        f.push(format!("data: {chunk}\n\n"), true);
    };
    if let Some(reasoning) = &r.reasoning {
        for p in split_chunks(reasoning, r.chunks) {
            delta_frame(f, json!({"reasoning_content": p}));
        }
    }
    if let Some(text) = ctx.text {
        for p in split_chunks(text, r.chunks) {
            delta_frame(f, json!({"content": p}));
        }
    }
    for (i, c) in r.tool_calls.iter().enumerate() {
        let mut start = json!({"index": i, "id": tool_id(ctx, i), "type": "function",
                               "function": {"name": c.name, "arguments": ""}});
        if r.omit_tool_index {
            if let Some(o) = start.as_object_mut() {
                o.remove("index");
            }
        }
        delta_frame(f, json!({"tool_calls": [start]}));
        for p in split_chunks(&c.raw_arguments, r.chunks) {
            let mut d = json!({"index": i, "function": {"arguments": p}});
            if r.omit_tool_index {
                if let Some(o) = d.as_object_mut() {
                    o.remove("index");
                }
            }
            delta_frame(f, json!({"tool_calls": [d]}));
        }
    }
    let trailer = f.trailer();
    let finish = if r.null_finish_reason {
        Value::Null
    } else if has_tools(ctx) {
        json!("tool_calls")
    } else {
        json!("stop")
    };
    let chunk = envelope(json!([{"index": 0, "delta": {}, "finish_reason": finish}]));
    f.push(format!("data: {chunk}\n\n"), false);
    if let (Some(u), true) = (&r.usage, ctx.include_usage) {
        let mut chunk = envelope(json!([]));
        chunk["usage"] = openai_usage(u);
        f.push(format!("data: {chunk}\n\n"), false);
    }
    if !r.omit_done {
        f.push("data: [DONE]\n\n".to_string(), false);
    }
    trailer
}

fn anthropic_frames(ctx: &Ctx<'_>, f: &mut Frames) -> usize {
    let r = ctx.reply;
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut message = json!({
        "id": format!("msg_fake_{}", ctx.seq), "type": "message", "role": "assistant",
        "model": ctx.model, "content": [], "stop_reason": null, "stop_sequence": null,
    });
    if let Some(u) = &r.usage {
        message["usage"] = anthropic_usage(u, 1);
    }
    f.push(ev("message_start", json!({"type": "message_start", "message": message})), false);
    f.push(ev("ping", json!({"type": "ping"})), false);
    let mut index = 0usize;
    let mut block = |f: &mut Frames, start: Value, deltas: Vec<Value>, extra: Option<Value>| {
        f.push(ev("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": start})), false);
        for d in deltas {
            f.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": d})), true);
        }
        if let Some(d) = extra {
            f.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": d})), false);
        }
        f.push(ev("content_block_stop", json!({"type": "content_block_stop", "index": index})), false);
        index += 1;
    };
    if let Some(reasoning) = &r.reasoning {
        let deltas = split_chunks(reasoning, r.chunks).into_iter().map(|p| json!({"type": "thinking_delta", "thinking": p})).collect();
        block(f, json!({"type": "thinking", "thinking": ""}), deltas, Some(json!({"type": "signature_delta", "signature": "fake-signature"})));
    }
    if let Some(text) = ctx.text {
        let deltas = split_chunks(text, r.chunks).into_iter().map(|p| json!({"type": "text_delta", "text": p})).collect();
        block(f, json!({"type": "text", "text": ""}), deltas, None);
    }
    for (i, c) in r.tool_calls.iter().enumerate() {
        let deltas = split_chunks(&c.raw_arguments, r.chunks).into_iter().map(|p| json!({"type": "input_json_delta", "partial_json": p})).collect();
        block(f, json!({"type": "tool_use", "id": tool_id(ctx, i), "name": c.name, "input": {}}), deltas, None);
    }
    let trailer = f.trailer();
    let mut delta = json!({
        "type": "message_delta",
        "delta": {"stop_reason": if has_tools(ctx) { "tool_use" } else { "end_turn" }, "stop_sequence": null},
    });
    if let Some(u) = &r.usage {
        delta["usage"] = json!({"output_tokens": u.output});
    }
    f.push(ev("message_delta", delta), false);
    if !r.omit_done {
        f.push(ev("message_stop", json!({"type": "message_stop"})), false);
    }
    trailer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting() {
        assert_eq!(split_chunks("abcdefg", 3), vec!["abc", "de", "fg"]);
        assert_eq!(split_chunks("ab", 5), vec!["a", "b"]);
        assert!(split_chunks("", 3).is_empty());
        assert_eq!(split_chunks("héllo", 1), vec!["héllo"]);
    }

    #[test]
    fn last_user() {
        let req = json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r"}]},
        ]});
        assert_eq!(last_user_text(&req), "first");
    }
}
