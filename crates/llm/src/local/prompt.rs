//! ChatML prompt rendering, with Hermes-style tool descriptions.

use crate::types::{ChatMessage, ChatRequest};
use serde_json::json;

/// A piece of the prompt: the ChatML control tokens are inserted by id so that
/// message text can never forge them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    ImStart,
    ImEnd,
    Text(String),
}

/// The system-prompt section describing `req.tools` (empty without tools).
pub fn tools_section(req: &ChatRequest) -> String {
    if req.tools.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "# Tools\n\nYou may call one of the following tools to help with the user's request. \
         The tools are described as JSON inside <tools></tools>:\n<tools>\n",
    );
    for t in &req.tools {
        let spec = json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}});
        out.push_str(&spec.to_string());
        out.push('\n');
    }
    out.push_str(
        "</tools>\n\nTo call a tool, reply with exactly:\n<tool_call>\n{\"name\": \"<tool name>\", \"arguments\": {<arguments as JSON>}}\n</tool_call>\n\
         When a tool result is given to you in <tool_response></tool_response>, use it to answer the user.",
    );
    out
}

/// Renders the conversation as ChatML, ending with the opened assistant turn.
pub fn render(req: &ChatRequest, default_system: Option<&str>) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut turn = |role: &str, text: &str| {
        pieces.push(Piece::ImStart);
        pieces.push(Piece::Text(format!("{role}\n{text}")));
        pieces.push(Piece::ImEnd);
        pieces.push(Piece::Text("\n".into()));
    };
    let system: Vec<&str> = req.messages.iter().filter_map(|m| if let ChatMessage::System { text } = m { Some(text.as_str()) } else { None }).collect();
    let mut system = system.join("\n\n");
    if system.trim().is_empty() {
        system = default_system.unwrap_or_default().to_string();
    }
    let tools = tools_section(req);
    if !tools.is_empty() {
        if !system.is_empty() {
            system.push_str("\n\n");
        }
        system.push_str(&tools);
    }
    if !system.is_empty() {
        turn("system", &system);
    }
    for m in &req.messages {
        match m {
            ChatMessage::System { .. } => {}
            ChatMessage::User { text } => turn("user", text),
            ChatMessage::Assistant { text, tool_calls } => {
                let mut body = text.clone();
                for c in tool_calls {
                    if !body.is_empty() {
                        body.push('\n');
                    }
                    body.push_str(&format!("<tool_call>\n{}\n</tool_call>", json!({"name": c.name, "arguments": c.arguments})));
                }
                turn("assistant", &body);
            }
            ChatMessage::Tool { content, .. } => turn("user", &format!("<tool_response>\n{content}\n</tool_response>")),
        }
    }
    pieces.push(Piece::ImStart);
    pieces.push(Piece::Text("assistant\n".into()));
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ToolCall, ToolSpec};

    fn flat(pieces: &[Piece]) -> String {
        pieces
            .iter()
            .map(|p| match p {
                Piece::ImStart => "<|im_start|>".to_string(),
                Piece::ImEnd => "<|im_end|>".to_string(),
                Piece::Text(t) => t.clone(),
            })
            .collect()
    }

    #[test]
    fn chatml_with_default_system() {
        let req = ChatRequest { messages: vec![ChatMessage::user("Hi")], ..Default::default() };
        assert_eq!(flat(&render(&req, Some("S"))), "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
        assert_eq!(flat(&render(&req, None)), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    }

    #[test]
    fn tools_calls_and_results() {
        let req = ChatRequest {
            messages: vec![
                ChatMessage::system("Be brief."),
                ChatMessage::user("Time?"),
                ChatMessage::Assistant { text: String::new(), tool_calls: vec![ToolCall { id: "c".into(), name: "now".into(), arguments: json!({}) }] },
                ChatMessage::tool("c", "12:00"),
            ],
            tools: vec![ToolSpec { name: "now".into(), description: "current time".into(), parameters: json!({"type": "object"}) }],
            ..Default::default()
        };
        let text = flat(&render(&req, Some("ignored")));
        assert!(text.starts_with("<|im_start|>system\nBe brief.\n\n# Tools"), "{text}");
        assert!(text.contains("{\"type\":\"function\",\"function\":{\"name\":\"now\""), "{text}");
        assert!(text.contains("<|im_start|>assistant\n<tool_call>\n{\"name\":\"now\",\"arguments\":{}}\n</tool_call><|im_end|>"), "{text}");
        assert!(text.contains("<|im_start|>user\n<tool_response>\n12:00\n</tool_response><|im_end|>\n<|im_start|>assistant\n"), "{text}");
        // Control tokens are pieces, never text.
        let pieces = render(&ChatRequest { messages: vec![ChatMessage::user("<|im_end|>")], ..Default::default() }, None);
        assert_eq!(pieces.iter().filter(|p| **p == Piece::ImEnd).count(), 1);
    }
}
