//! The typed configuration of each node kind: one serde + JSON Schema type per kind, from
//! which documents are parsed (errors name the field) and the node catalogue
//! (`GET /api/v1/flows/node-kinds`) is generated.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// `template`: renders `{{placeholders}}` (flow inputs, nodes, wired ports) into `text`.
#[derive(Deserialize, JsonSchema)]
pub struct TemplateConfig {
    /// Text with `{{name}}` placeholders.
    pub template: String,
}

/// `llm`: one model call; with `schema`, the reply is parsed as JSON into the `json` port.
#[derive(Deserialize, JsonSchema)]
pub struct LlmConfig {
    /// Model name as agents use it (`openai/gpt-4o-mini`, `claude-…`, `ollama/…`, `auto`).
    pub model: String,
    /// The user message, with `{{placeholders}}`.
    pub prompt: String,
    /// Optional system message, with `{{placeholders}}`.
    #[serde(default)]
    pub system: Option<String>,
    /// JSON Schema of a structured reply (its top-level `required` keys are checked).
    #[serde(default)]
    pub schema: Option<Map<String, Value>>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

/// `agent`: runs an agent to completion in a hidden session (`type: "flow"`); `text` is
/// its final answer.
#[derive(Deserialize, JsonSchema)]
pub struct AgentConfig {
    pub agent_id: String,
    /// The message the session starts with, with `{{placeholders}}`.
    pub prompt: String,
}

/// One field of `extract`.
#[derive(Deserialize, JsonSchema)]
pub struct ExtractField {
    pub name: String,
    /// `string` (default), `number`, `boolean`, `list` or `object`.
    #[serde(default, rename = "type")]
    pub ty: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// `extract`: structured fields from the `text` input (one model call) into `fields`.
#[derive(Deserialize, JsonSchema)]
pub struct ExtractConfig {
    pub model: String,
    pub fields: Vec<ExtractField>,
}

/// `categorize`: one of `categories` for the `text` input (one model call).
#[derive(Deserialize, JsonSchema)]
pub struct CategorizeConfig {
    pub model: String,
    /// At least two.
    pub categories: Vec<String>,
}

/// `http_request`: any method under the SSRF policy; ports `body`, `status`, `json`.
#[derive(Deserialize, JsonSchema)]
pub struct HttpRequestConfig {
    /// GET (default), POST, PUT, PATCH, DELETE or HEAD.
    #[serde(default)]
    pub method: Option<String>,
    /// With `{{placeholders}}`.
    pub url: String,
    /// Header values may hold `{{placeholders}}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A string (with `{{placeholders}}`) or JSON sent as its text.
    #[serde(default)]
    pub body: Option<Value>,
}

/// `web_fetch`: a page as text (HTML converted) under the SSRF policy.
#[derive(Deserialize, JsonSchema)]
pub struct WebFetchConfig {
    /// With `{{placeholders}}`.
    pub url: String,
}

/// `json_path`: a value inside the `value` input (`$.a.b[0]`, `a.b.0`).
#[derive(Deserialize, JsonSchema)]
pub struct JsonPathConfig {
    pub path: String,
}

/// `split` (text → items) and `join` (items → text).
#[derive(Deserialize, JsonSchema)]
pub struct SeparatorConfig {
    /// Default: a newline.
    #[serde(default)]
    pub separator: Option<String>,
}

/// `filter`: keeps items that match every given rule.
#[derive(Deserialize, JsonSchema)]
pub struct FilterConfig {
    /// Item text contains this.
    #[serde(default)]
    pub contains: Option<String>,
    /// Item equals this value.
    #[serde(default)]
    pub equals: Option<Value>,
    /// Drops empty items.
    #[serde(default)]
    pub not_empty: bool,
}

/// `dedupe`: drops repeated items (first kept).
#[derive(Deserialize, JsonSchema)]
pub struct DedupeConfig {}

/// `condition` (alias `router`): the `value` input goes out on `true` or `false`; nodes
/// wired to the other port are skipped.
#[derive(Deserialize, JsonSchema)]
pub struct ConditionConfig {
    /// equals, not_equals, contains, not_empty (default), empty, gt, lt.
    #[serde(default)]
    pub op: Option<String>,
    /// The operand of equals, not_equals, contains, gt, lt.
    #[serde(default)]
    pub value: Option<Value>,
}

/// `loop`: maps a flow over the `items` input, `concurrency` at a time; `results` in item
/// order. Each item's result is committed as it finishes.
#[derive(Deserialize, JsonSchema)]
pub struct LoopConfig {
    /// An inline flow document (or give `saved_item_id`).
    #[serde(default)]
    pub flow: Option<Value>,
    #[serde(default)]
    pub saved_item_id: Option<String>,
    /// The flow input each item is bound to (default: its first input).
    #[serde(default)]
    pub item_input: Option<String>,
    /// 1–64 (default 4).
    #[serde(default)]
    pub concurrency: Option<u64>,
}

/// `loop_file`: maps a flow over the lines of a flow file (the `file_name` input: an
/// upload, F8, or a file this run wrote), `concurrency` at a time, reading the file as a
/// stream; `file_name` is a run file (F10), `<node id>-results.jsonl`, of JSON lines, one
/// result per input line in order, and `count` the number of lines. Memory stays flat in the file's size. Empty
/// lines are items too (an empty string); a final newline ends the last line.
#[derive(Deserialize, JsonSchema)]
pub struct LoopFileConfig {
    /// An inline flow document (or give `saved_item_id`).
    #[serde(default)]
    pub flow: Option<Value>,
    #[serde(default)]
    pub saved_item_id: Option<String>,
    /// The flow input each line is bound to (default: its first input).
    #[serde(default)]
    pub item_input: Option<String>,
    /// 1–64 (default 4).
    #[serde(default)]
    pub concurrency: Option<u64>,
}

/// `subflow`: runs another flow (inline or saved) with the wired ports as its inputs;
/// `outputs` is its outputs object.
#[derive(Deserialize, JsonSchema)]
pub struct SubflowConfig {
    #[serde(default)]
    pub flow: Option<Value>,
    #[serde(default)]
    pub saved_item_id: Option<String>,
}

/// `write_file`: the `content` input as a file of the run (F10/F11 with `run_id`).
#[derive(Deserialize, JsonSchema)]
pub struct WriteFileConfig {
    /// With `{{placeholders}}`; sanitized.
    pub file_name: String,
}

/// A node's configuration parsed into its type; errors name the field
/// (`nodes[i].<field>`) and say what is wrong.
pub fn parse<T: DeserializeOwned>(o: &Map<String, Value>) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize::<_, T>(Value::Object(o.clone())).map_err(|e| {
        let inner = e.inner().to_string();
        let path = e.path().to_string();
        // serde names a missing field only in its message.
        if let Some(rest) = inner.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or_default().to_string();
            return (name.clone(), format!("{name} is required"));
        }
        let field = if path == "." { "kind".to_string() } else { path };
        let msg = inner.split(" at line ").next().unwrap_or(&inner).to_string();
        (field.clone(), format!("{field}: {msg}"))
    })
}

/// Input ports (name, type, required) and output ports (name, type) of each kind.
type Ports = (&'static [(&'static str, &'static str, bool)], &'static [(&'static str, &'static str)]);

fn ports(kind: &str) -> Ports {
    const PLACEHOLDERS: (&str, &str, bool) = ("{{placeholder}}", "any", false);
    match kind {
        "template" => (&[PLACEHOLDERS], &[("text", "string")]),
        "llm" => (&[PLACEHOLDERS], &[("text", "string"), ("json", "object (with schema)")]),
        "agent" => (&[PLACEHOLDERS], &[("text", "string")]),
        "extract" => (&[("text", "string", true)], &[("fields", "object")]),
        "categorize" => (&[("text", "string", true)], &[("category", "string")]),
        "http_request" => (&[PLACEHOLDERS], &[("body", "string"), ("status", "number"), ("json", "any")]),
        "web_fetch" => (&[PLACEHOLDERS], &[("text", "string"), ("status", "number")]),
        "json_path" => (&[("value", "any", true)], &[("value", "any")]),
        "split" => (&[("text", "string", true)], &[("items", "list")]),
        "join" => (&[("items", "list", true)], &[("text", "string")]),
        "filter" | "dedupe" => (&[("items", "list", true)], &[("items", "list")]),
        "condition" => (&[("value", "any", true)], &[("true", "any"), ("false", "any")]),
        "loop" => (&[("items", "list", true)], &[("results", "list")]),
        "loop_file" => (&[("file_name", "string", true)], &[("file_name", "string"), ("count", "number")]),
        "subflow" => (&[("<the flow's inputs>", "as declared", false)], &[("outputs", "object")]),
        "write_file" => (&[("content", "any", true), PLACEHOLDERS], &[("file_name", "string")]),
        _ => (&[], &[]),
    }
}

fn entry<T: JsonSchema>(kind: &str) -> Value {
    let schema = schemars::schema_for!(T);
    let (inputs, outputs) = ports(kind);
    json!({
        "kind": kind,
        "description": schema.get("description").cloned().unwrap_or(Value::Null),
        "config": schema,
        "inputs": inputs.iter().map(|(n, t, r)| json!({"port": n, "type": t, "required": r})).collect::<Vec<_>>(),
        "outputs": outputs.iter().map(|(n, t)| json!({"port": n, "type": t})).collect::<Vec<_>>(),
    })
}

/// Every node kind: its configuration's JSON Schema (from the types above) and its ports.
pub fn catalogue() -> Vec<Value> {
    vec![
        entry::<TemplateConfig>("template"),
        entry::<LlmConfig>("llm"),
        entry::<AgentConfig>("agent"),
        entry::<ExtractConfig>("extract"),
        entry::<CategorizeConfig>("categorize"),
        entry::<HttpRequestConfig>("http_request"),
        entry::<WebFetchConfig>("web_fetch"),
        entry::<JsonPathConfig>("json_path"),
        entry::<SeparatorConfig>("split"),
        entry::<SeparatorConfig>("join"),
        entry::<FilterConfig>("filter"),
        entry::<DedupeConfig>("dedupe"),
        entry::<ConditionConfig>("condition"),
        entry::<LoopConfig>("loop"),
        entry::<LoopFileConfig>("loop_file"),
        entry::<SubflowConfig>("subflow"),
        entry::<WriteFileConfig>("write_file"),
    ]
}
