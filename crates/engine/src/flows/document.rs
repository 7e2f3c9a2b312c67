//! Flow documents: parsing, validation and the graph the runtime executes.
//!
//! A document is JSON (YAML accepted by the CLI and the management API):
//!
//! ```json
//! {"name": "Summarize", "description": "…",
//!  "inputs": [{"name": "url", "data_type": "string", "required": true}],
//!  "nodes": [
//!    {"id": "page", "kind": "web_fetch", "url": "{{url}}"},
//!    {"id": "sum", "kind": "llm", "model": "openai/gpt-4o-mini", "prompt": "Summarize: {{page}}"}
//!  ],
//!  "edges": [{"from": "page.text", "to": "sum.page"}],
//!  "outputs": [{"output_name": "summary", "from": "sum"}]}
//! ```
//!
//! A reference is `input.<name>` (a flow input), `<node>` (its default output port) or
//! `<node>.<port>`. Ports are wired by `edges`, by a node's `inputs` map
//! (`{"port": "ref"}`), or implicitly by a `{{placeholder}}` naming a flow input or a
//! node. `after: [ids]` orders nodes without passing data. API.md §8.4's sequential
//! `steps` format is accepted and becomes a chain.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Map, Value};

/// Input names F1 reserves (§8.4).
pub const RESERVED_INPUTS: [&str; 9] =
    ["api_key", "saved_item_id", "user_id", "project_id", "openai_token", "action_id", "reuse_action", "trigger_id", "pipeline_inputs"];

/// Largest number of nodes in one document.
pub const MAX_NODES: usize = 10_000;
/// Upper bound of a loop's concurrency.
pub const MAX_LOOP_CONCURRENCY: usize = 64;

/// Types of ports and flow inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortType {
    String,
    Number,
    Boolean,
    List,
    Object,
    Any,
}

impl PortType {
    fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::List => "list",
            Self::Object => "object",
            Self::Any => "any",
        }
    }

    /// Whether a value of type `self` may feed a port of type `to` (scalars render into
    /// strings; `any` matches everything).
    fn feeds(self, to: PortType) -> bool {
        self == to || self == Self::Any || to == Self::Any || (to == Self::String && matches!(self, Self::Number | Self::Boolean))
    }
}

/// A validation error: where (node id, field) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocError {
    /// The node the error is about (None: the document itself).
    pub node: Option<String>,
    /// The field, as a path inside the document (`nodes[2].prompt`, `edges[0].to`, `inputs[1].name`).
    pub field: String,
    pub message: String,
}

impl DocError {
    fn doc(field: impl Into<String>, message: impl Into<String>) -> Self {
        DocError { node: None, field: field.into(), message: message.into() }
    }
    fn node(node: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        DocError { node: Some(node.to_string()), field: field.into(), message: message.into() }
    }
}

impl std::fmt::Display for DocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.node {
            Some(n) => write!(f, "node \"{n}\" ({}): {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// A declared flow input.
#[derive(Debug, Clone, PartialEq)]
pub struct InputDecl {
    pub name: String,
    /// `string`, `file`, `number`, `boolean`, `list` or `object`.
    pub data_type: String,
    pub description: Option<String>,
    pub required: bool,
    pub default: Option<Value>,
}

impl InputDecl {
    fn port_type(&self) -> PortType {
        match self.data_type.as_str() {
            "number" => PortType::Number,
            "boolean" => PortType::Boolean,
            "list" => PortType::List,
            "object" => PortType::Object,
            _ => PortType::String,
        }
    }
}

/// Where a port's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ref {
    Input(String),
    Node(String, String),
}

impl std::fmt::Display for Ref {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ref::Input(n) => write!(f, "input.{n}"),
            Ref::Node(n, p) => write!(f, "{n}.{p}"),
        }
    }
}

/// Comparison of a condition node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CondOp {
    Equals,
    NotEquals,
    Contains,
    NotEmpty,
    Empty,
    Gt,
    Lt,
}

/// A node kind with its configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Template {
        template: String,
    },
    Llm {
        model: String,
        prompt: String,
        system: Option<String>,
        schema: Option<Value>,
        temperature: Option<f64>,
        max_tokens: Option<u32>,
    },
    Agent {
        agent_id: String,
        prompt: String,
    },
    Extract {
        model: String,
        fields: Vec<(String, String, Option<String>)>,
    },
    Categorize {
        model: String,
        categories: Vec<String>,
    },
    HttpRequest {
        method: String,
        url: String,
        headers: BTreeMap<String, String>,
        body: Option<String>,
    },
    WebFetch {
        url: String,
    },
    JsonPath {
        path: Vec<PathStep>,
    },
    Split {
        separator: String,
    },
    Join {
        separator: String,
    },
    Filter {
        contains: Option<String>,
        equals: Option<Value>,
        not_empty: bool,
    },
    Dedupe,
    Condition {
        op: CondOp,
        value: Value,
    },
    /// `over_file`: the items are the lines of a flow file named by the `file_name` input,
    /// read as a stream; the results go to a JSON-lines run file (`loop_file`), so memory
    /// stays flat whatever the number of items.
    Loop {
        body: Box<LoopBody>,
        item_input: String,
        concurrency: usize,
        over_file: bool,
    },
    Subflow {
        target: SubflowTarget,
    },
    WriteFile {
        file_name: String,
    },
}

/// What a loop runs per item.
#[derive(Debug, Clone, PartialEq)]
pub enum LoopBody {
    Inline(Graph),
    Saved(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SubflowTarget {
    Inline(Box<Graph>),
    Saved(String),
}

/// One step of a `json_path` (`$.a.b[0]`, `a.b.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Template { .. } => "template",
            Kind::Llm { .. } => "llm",
            Kind::Agent { .. } => "agent",
            Kind::Extract { .. } => "extract",
            Kind::Categorize { .. } => "categorize",
            Kind::HttpRequest { .. } => "http_request",
            Kind::WebFetch { .. } => "web_fetch",
            Kind::JsonPath { .. } => "json_path",
            Kind::Split { .. } => "split",
            Kind::Join { .. } => "join",
            Kind::Filter { .. } => "filter",
            Kind::Dedupe => "dedupe",
            Kind::Condition { .. } => "condition",
            Kind::Loop { over_file: false, .. } => "loop",
            Kind::Loop { over_file: true, .. } => "loop_file",
            Kind::Subflow { .. } => "subflow",
            Kind::WriteFile { .. } => "write_file",
        }
    }

    /// Output ports and their types; the first is the default.
    pub fn outputs(&self) -> Vec<(&'static str, PortType)> {
        match self {
            Kind::Template { .. } | Kind::Agent { .. } | Kind::Join { .. } => vec![("text", PortType::String)],
            Kind::Llm { schema, .. } => {
                if schema.is_some() {
                    vec![("json", PortType::Object), ("text", PortType::String)]
                } else {
                    vec![("text", PortType::String)]
                }
            }
            Kind::Extract { .. } => vec![("fields", PortType::Object)],
            Kind::Categorize { .. } => vec![("category", PortType::String)],
            Kind::HttpRequest { .. } => vec![("body", PortType::String), ("status", PortType::Number), ("json", PortType::Any)],
            Kind::WebFetch { .. } => vec![("text", PortType::String), ("status", PortType::Number)],
            Kind::JsonPath { .. } => vec![("value", PortType::Any)],
            Kind::Split { .. } | Kind::Filter { .. } | Kind::Dedupe => vec![("items", PortType::List)],
            Kind::Condition { .. } => vec![("true", PortType::Any), ("false", PortType::Any)],
            Kind::Loop { over_file: false, .. } => vec![("results", PortType::List)],
            Kind::Loop { over_file: true, .. } => vec![("file_name", PortType::String), ("count", PortType::Number)],
            Kind::Subflow { .. } => vec![("outputs", PortType::Object)],
            Kind::WriteFile { .. } => vec![("file_name", PortType::String)],
        }
    }

    /// Fixed input ports (all required); placeholder kinds add one `any` port per placeholder.
    fn fixed_inputs(&self) -> Vec<(&'static str, PortType)> {
        match self {
            Kind::Extract { .. } | Kind::Categorize { .. } | Kind::Split { .. } => vec![("text", PortType::String)],
            Kind::Join { .. } | Kind::Filter { .. } | Kind::Dedupe | Kind::Loop { over_file: false, .. } => vec![("items", PortType::List)],
            Kind::Loop { over_file: true, .. } => vec![("file_name", PortType::String)],
            Kind::JsonPath { .. } | Kind::Condition { .. } => vec![("value", PortType::Any)],
            Kind::WriteFile { .. } => vec![("content", PortType::Any)],
            _ => vec![],
        }
    }

    /// Optional input ports: a subflow's inputs (an inline flow's, typed; a saved flow's
    /// are only known when it runs, so any port name is accepted as `any`).
    fn optional_input(&self, port: &str) -> Option<PortType> {
        match self {
            Kind::Subflow { target: SubflowTarget::Inline(g) } => g.inputs.iter().find(|d| d.name == port).map(InputDecl::port_type),
            Kind::Subflow { target: SubflowTarget::Saved(_) } => Some(PortType::Any),
            _ => None,
        }
    }

    /// Texts with `{{placeholders}}` and the field each comes from.
    fn templates(&self) -> Vec<(&'static str, &str)> {
        match self {
            Kind::Template { template } => vec![("template", template)],
            Kind::Llm { prompt, system, .. } => {
                let mut v = vec![("prompt", prompt.as_str())];
                if let Some(s) = system {
                    v.push(("system", s.as_str()));
                }
                v
            }
            Kind::Agent { prompt, .. } => vec![("prompt", prompt)],
            Kind::HttpRequest { url, headers, body, .. } => {
                let mut v = vec![("url", url.as_str())];
                v.extend(headers.values().map(|h| ("headers", h.as_str())));
                if let Some(b) = body {
                    v.push(("body", b.as_str()));
                }
                v
            }
            Kind::WebFetch { url } => vec![("url", url)],
            Kind::WriteFile { file_name } => vec![("file_name", file_name)],
            _ => vec![],
        }
    }

    /// Whether running it calls a model (so it costs credits and must never run twice).
    pub fn calls_model(&self) -> bool {
        matches!(self, Kind::Llm { .. } | Kind::Agent { .. } | Kind::Extract { .. } | Kind::Categorize { .. })
    }
}

/// A validated node: its kind and where each input port's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    pub kind: Kind,
    /// Input port → source.
    pub wires: BTreeMap<String, Ref>,
    /// Nodes that must finish first without passing data.
    pub after: Vec<String>,
}

impl Node {
    /// Nodes this one waits for.
    pub fn deps(&self) -> impl Iterator<Item = &str> {
        self.wires
            .values()
            .filter_map(|r| match r {
                Ref::Node(n, _) => Some(n.as_str()),
                Ref::Input(_) => None,
            })
            .chain(self.after.iter().map(String::as_str))
    }
}

/// A validated flow: nodes in a topological order.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub name: String,
    pub description: Option<String>,
    pub inputs: Vec<InputDecl>,
    pub nodes: Vec<Node>,
    pub outputs: Vec<(String, Ref)>,
}

impl Graph {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// `{{name}}` placeholders of a text, in order, without duplicates.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if is_ref_text(name) && !out.iter().any(|o| o == name) {
            out.push(name.to_string());
        }
        rest = &after[end + 2..];
    }
    out
}

fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn is_ref_text(s: &str) -> bool {
    let mut parts = s.splitn(2, '.');
    parts.next().is_some_and(is_ident) && parts.next().is_none_or(is_ident)
}

/// Renders `{{name}}` placeholders from `vars` (strings as they are, other values as JSON;
/// unknown names are left as written).
pub fn render(text: &str, vars: &HashMap<String, Value>) -> String {
    render_placeholders(text, |name| vars.get(name).map(value_text))
}

/// Replaces each `{{ name }}` with `lookup(name)`; a placeholder `lookup` answers `None`
/// for stays as written, and an unclosed `{{` ends the rendering as text.
pub fn render_placeholders(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        match lookup(after[..end].trim()) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A value as text: strings unquoted, `null` empty, everything else JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn parse_ref(s: &str) -> Option<Ref> {
    let s = s.trim();
    let (a, b) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    if !is_ident(a) || b.is_some_and(|b| !is_ident(b)) {
        return None;
    }
    Some(match (a, b) {
        ("input", Some(name)) => Ref::Input(name.to_string()),
        (node, Some(port)) => Ref::Node(node.to_string(), port.to_string()),
        (node, None) => Ref::Node(node.to_string(), String::new()),
    })
}

/// Parses JSON or YAML text into a document value.
pub fn parse_text(text: &str) -> Result<Value, DocError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str(text).map_err(|e| DocError::doc("document", format!("invalid JSON: {e}")));
    }
    serde_norway::from_str::<Value>(text).map_err(|e| DocError::doc("document", format!("invalid JSON or YAML: {e}")))
}

fn get_str<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

/// Validates a document. All errors are returned (the first is the one an API reports).
pub fn validate(doc: &Value) -> Result<Graph, Vec<DocError>> {
    let mut errs = Vec::new();
    let Some(m) = doc.as_object() else {
        return Err(vec![DocError::doc("document", "a flow document is a JSON object")]);
    };
    let name = match get_str(m, "name").map(str::trim) {
        Some(n) if !n.is_empty() && n.len() <= 256 => n.to_string(),
        _ => {
            errs.push(DocError::doc("name", "name is required (1–256 characters)"));
            String::new()
        }
    };
    let description = get_str(m, "description").map(str::to_string);
    let inputs = parse_inputs(m, &mut errs);
    let (raw_nodes, mut extra_edges): (Vec<Value>, Vec<Value>) = if let Some(steps) = m.get("steps") {
        if m.contains_key("nodes") {
            errs.push(DocError::doc("steps", "a document has either steps (a chain) or nodes, not both"));
        }
        steps_to_nodes(steps, &mut errs)
    } else {
        match m.get("nodes") {
            Some(Value::Array(a)) => (a.clone(), vec![]),
            None => (vec![], vec![]),
            Some(_) => {
                errs.push(DocError::doc("nodes", "nodes must be a list"));
                (vec![], vec![])
            }
        }
    };
    if raw_nodes.len() > MAX_NODES {
        errs.push(DocError::doc("nodes", format!("at most {MAX_NODES} nodes")));
        return Err(errs);
    }
    match m.get("edges") {
        Some(Value::Array(a)) => extra_edges.extend(a.iter().cloned()),
        None | Some(Value::Null) => {}
        Some(_) => errs.push(DocError::doc("edges", "edges must be a list")),
    }

    // Nodes: ids and kinds first, so references can be checked against all of them.
    let mut nodes: Vec<Node> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut explicit: Vec<BTreeMap<String, (String, String)>> = Vec::new();
    for (i, raw) in raw_nodes.iter().enumerate() {
        let Some(o) = raw.as_object() else {
            errs.push(DocError::doc(format!("nodes[{i}]"), "a node is an object"));
            continue;
        };
        let id = match get_str(o, "id") {
            Some(id) if is_ident(id) && id != "input" => id.to_string(),
            Some(id) => {
                errs.push(DocError::doc(format!("nodes[{i}].id"), format!("invalid node id {id:?}: 1–64 of A-Z a-z 0-9 _ - (and not \"input\")")));
                continue;
            }
            None => {
                errs.push(DocError::doc(format!("nodes[{i}].id"), "id is required"));
                continue;
            }
        };
        if index.contains_key(&id) {
            errs.push(DocError::node(&id, format!("nodes[{i}].id"), "duplicate node id"));
            continue;
        }
        let kind = match parse_kind(&id, i, o) {
            Ok(k) => k,
            Err(e) => {
                errs.extend(e);
                continue;
            }
        };
        let mut wires = BTreeMap::new();
        match o.get("inputs") {
            Some(Value::Object(w)) => {
                for (port, r) in w {
                    match r.as_str() {
                        Some(r) => {
                            wires.insert(port.clone(), (r.to_string(), format!("nodes[{i}].inputs.{port}")));
                        }
                        None => {
                            errs.push(DocError::node(&id, format!("nodes[{i}].inputs.{port}"), "a wire is a reference string (node, node.port or input.name)"))
                        }
                    }
                }
            }
            None | Some(Value::Null) => {}
            Some(_) => errs.push(DocError::node(&id, format!("nodes[{i}].inputs"), "inputs must be an object of port → reference")),
        }
        let after = match o.get("after") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => vec![],
        };
        index.insert(id.clone(), nodes.len());
        explicit.push(wires);
        nodes.push(Node { id, kind, wires: BTreeMap::new(), after });
    }
    for (i, e) in extra_edges.iter().enumerate() {
        let field = format!("edges[{i}]");
        let (Some(from), Some(to)) = (e.get("from").and_then(Value::as_str), e.get("to").and_then(Value::as_str)) else {
            errs.push(DocError::doc(field, "an edge is {\"from\": \"node.port\", \"to\": \"node.port\"}"));
            continue;
        };
        match to.split_once('.') {
            Some((n, p)) if index.contains_key(n) => {
                explicit[index[n]].insert(p.to_string(), (from.to_string(), format!("{field}.from")));
            }
            _ => errs.push(DocError::doc(format!("{field}.to"), format!("dangling edge: {to:?} names no node port (node.port)"))),
        }
    }

    // Wires: explicit ones, then placeholders resolved against inputs and nodes.
    let input_types: HashMap<&str, PortType> = inputs.iter().map(|d| (d.name.as_str(), d.port_type())).collect();
    let out_types: HashMap<String, Vec<(&'static str, PortType)>> = nodes.iter().map(|n| (n.id.clone(), n.kind.outputs())).collect();
    let resolve = |r: &str| -> Result<(Ref, PortType), String> {
        match parse_ref(r) {
            Some(Ref::Input(name)) => match input_types.get(name.as_str()) {
                Some(t) => Ok((Ref::Input(name), *t)),
                None => Err(format!("{r:?} names no flow input")),
            },
            Some(Ref::Node(n, p)) => match out_types.get(&n) {
                None => Err(format!("{r:?} names no node")),
                Some(outs) => {
                    let found = if p.is_empty() { outs.first() } else { outs.iter().find(|(name, _)| *name == p) };
                    match found {
                        Some((port, t)) => Ok((Ref::Node(n, port.to_string()), *t)),
                        None => Err(format!("node {n:?} has no output port {p:?} (it has {})", outs.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", "))),
                    }
                }
            },
            None => Err(format!("{r:?} is not a reference (node, node.port or input.name)")),
        }
    };
    for (i, node) in nodes.iter_mut().enumerate() {
        let fixed = node.kind.fixed_inputs();
        let mut templ_ports: Vec<(String, &'static str)> = Vec::new();
        for (field, text) in node.kind.templates() {
            for p in placeholders(text) {
                if !templ_ports.iter().any(|(x, _)| *x == p) {
                    templ_ports.push((p, field));
                }
            }
        }
        for (port, (r, field)) in &explicit[i] {
            let expected = fixed
                .iter()
                .find(|(p, _)| p == port)
                .map(|(_, t)| *t)
                .or_else(|| templ_ports.iter().any(|(p, _)| p == port).then_some(PortType::Any))
                .or_else(|| node.kind.optional_input(port));
            let Some(expected) = expected else {
                errs.push(DocError::node(&node.id, field.clone(), format!("node kind {} has no input port {port:?}", node.kind.name())));
                continue;
            };
            match resolve(r) {
                Ok((src, t)) => {
                    if !t.feeds(expected) {
                        errs.push(DocError::node(
                            &node.id,
                            field.clone(),
                            format!("type mismatch: {src} is {}, input {port:?} needs {}", t.name(), expected.name()),
                        ));
                    }
                    node.wires.insert(port.clone(), src);
                }
                Err(m) => errs.push(DocError::node(&node.id, field.clone(), format!("dangling edge: {m}"))),
            }
        }
        for (p, field) in &templ_ports {
            if node.wires.contains_key(p) {
                continue;
            }
            let implicit = if p.contains('.') {
                resolve(p)
            } else if input_types.contains_key(p.as_str()) {
                resolve(&format!("input.{p}"))
            } else if out_types.contains_key(p) {
                resolve(p)
            } else {
                Err(String::new())
            };
            match implicit {
                Ok((src, _)) => {
                    node.wires.insert(p.clone(), src);
                }
                Err(_) => errs.push(DocError::node(
                    &node.id,
                    format!("nodes[{i}].{field}"),
                    format!("placeholder {{{{{p}}}}} names no flow input, node or wired port"),
                )),
            }
        }
        for (p, _) in &fixed {
            if !node.wires.contains_key(*p) {
                errs.push(DocError::node(&node.id, format!("nodes[{i}].inputs.{p}"), format!("missing required input {p:?} (wire it with inputs or edges)")));
            }
        }
        for a in &node.after {
            if !out_types.contains_key(a) {
                errs.push(DocError::node(&node.id, format!("nodes[{i}].after"), format!("dangling edge: {a:?} names no node")));
            }
        }
        if node.deps().any(|d| d == node.id) {
            errs.push(DocError::node(&node.id, format!("nodes[{i}]"), "cycle: the node depends on itself"));
        }
    }

    // Outputs.
    let mut outputs = Vec::new();
    match m.get("outputs") {
        Some(Value::Array(a)) => {
            for (i, o) in a.iter().enumerate() {
                let name = o.get("output_name").or_else(|| o.get("name")).and_then(Value::as_str);
                let from = o.get("from").and_then(Value::as_str);
                match (name, from) {
                    (Some(n), Some(f)) if !n.trim().is_empty() => {
                        if outputs.iter().any(|(x, _)| x == n) {
                            errs.push(DocError::doc(format!("outputs[{i}].output_name"), format!("duplicate output {n:?}")));
                        }
                        match resolve(f) {
                            Ok((r, _)) => outputs.push((n.to_string(), r)),
                            Err(m) => errs.push(DocError::doc(format!("outputs[{i}].from"), format!("dangling edge: {m}"))),
                        }
                    }
                    _ => errs.push(DocError::doc(format!("outputs[{i}]"), "an output is {\"output_name\", \"from\": reference}")),
                }
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => errs.push(DocError::doc("outputs", "outputs must be a list")),
    }

    if !errs.is_empty() {
        return Err(errs);
    }
    let nodes = match topo_sort(nodes) {
        Ok(n) => n,
        Err(e) => return Err(vec![e]),
    };
    Ok(Graph { name, description, inputs, nodes, outputs })
}

fn parse_inputs(m: &Map<String, Value>, errs: &mut Vec<DocError>) -> Vec<InputDecl> {
    let mut out: Vec<InputDecl> = Vec::new();
    let arr = match m.get("inputs") {
        Some(Value::Array(a)) => a.clone(),
        None | Some(Value::Null) => return out,
        Some(_) => {
            errs.push(DocError::doc("inputs", "inputs must be a list"));
            return out;
        }
    };
    for (i, d) in arr.iter().enumerate() {
        let Some(name) = d.get("name").and_then(Value::as_str).filter(|n| is_ident(n)) else {
            errs.push(DocError::doc(format!("inputs[{i}].name"), "an input needs a name of 1–64 of A-Z a-z 0-9 _ -"));
            continue;
        };
        if RESERVED_INPUTS.contains(&name) {
            errs.push(DocError::doc(format!("inputs[{i}].name"), format!("{name:?} is a reserved input name")));
            continue;
        }
        if out.iter().any(|x| x.name == name) {
            errs.push(DocError::doc(format!("inputs[{i}].name"), format!("duplicate input {name:?}")));
            continue;
        }
        let data_type = d.get("data_type").and_then(Value::as_str).unwrap_or("string");
        if !["string", "file", "number", "boolean", "list", "object"].contains(&data_type) {
            errs.push(DocError::doc(
                format!("inputs[{i}].data_type"),
                format!("unknown data_type {data_type:?} (string, file, number, boolean, list, object)"),
            ));
            continue;
        }
        out.push(InputDecl {
            name: name.to_string(),
            data_type: data_type.to_string(),
            description: d.get("description").and_then(Value::as_str).map(str::to_string),
            required: d.get("required").and_then(Value::as_bool).unwrap_or(false),
            default: d.get("default").cloned(),
        });
    }
    out
}

/// §8.4 `steps`: each step a node that runs after the previous one.
fn steps_to_nodes(steps: &Value, errs: &mut Vec<DocError>) -> (Vec<Value>, Vec<Value>) {
    let Some(a) = steps.as_array() else {
        errs.push(DocError::doc("steps", "steps must be a list"));
        return (vec![], vec![]);
    };
    let mut nodes = Vec::new();
    let mut prev: Option<String> = None;
    for s in a {
        let mut n = s.clone();
        if let (Some(o), Some(p)) = (n.as_object_mut(), &prev) {
            o.insert("after".into(), json!([p]));
        }
        prev = s.get("id").and_then(Value::as_str).map(str::to_string);
        nodes.push(n);
    }
    (nodes, vec![])
}

fn parse_kind(id: &str, i: usize, o: &Map<String, Value>) -> Result<Kind, Vec<DocError>> {
    use super::kinds::*;
    let f = |k: &str| format!("nodes[{i}].{k}");
    let err = |k: &str, m: String| vec![DocError::node(id, f(k), m)];
    // The kind's typed configuration; a missing or mistyped field names itself.
    fn cfg<T: serde::de::DeserializeOwned>(id: &str, i: usize, o: &Map<String, Value>) -> Result<T, Vec<DocError>> {
        parse::<T>(o).map_err(|(field, msg)| vec![DocError::node(id, format!("nodes[{i}].{field}"), msg)])
    }
    let nonempty = |k: &str, v: String| if v.trim().is_empty() { Err(err(k, format!("{k} is required"))) } else { Ok(v) };
    let sub_errors = |e: Vec<DocError>| e.into_iter().map(|x| DocError::node(id, f(&format!("flow.{}", x.field)), x.to_string())).collect::<Vec<_>>();
    let kind = get_str(o, "kind").or_else(|| get_str(o, "type")).unwrap_or("");
    Ok(match kind {
        "template" => {
            let c: TemplateConfig = cfg(id, i, o)?;
            Kind::Template { template: nonempty("template", c.template)? }
        }
        "llm" => {
            let c: LlmConfig = cfg(id, i, o)?;
            Kind::Llm {
                model: nonempty("model", c.model)?,
                prompt: nonempty("prompt", c.prompt)?,
                system: c.system,
                schema: c.schema.map(Value::Object),
                temperature: c.temperature,
                max_tokens: c.max_tokens,
            }
        }
        "agent" => {
            let c: AgentConfig = cfg(id, i, o)?;
            Kind::Agent { agent_id: nonempty("agent_id", c.agent_id)?, prompt: nonempty("prompt", c.prompt)? }
        }
        "extract" => {
            let c: ExtractConfig = cfg(id, i, o)?;
            if c.fields.is_empty() {
                return Err(err("fields", "fields is required: [{\"name\", \"type\"?, \"description\"?}]".into()));
            }
            let mut out = Vec::new();
            for (j, x) in c.fields.into_iter().enumerate() {
                if !is_ident(&x.name) {
                    return Err(err(&format!("fields[{j}].name"), "a field needs a name of 1–64 of A-Z a-z 0-9 _ -".into()));
                }
                let ty = x.ty.unwrap_or_else(|| "string".into());
                if !["string", "number", "boolean", "list", "object"].contains(&ty.as_str()) {
                    return Err(err(&format!("fields[{j}].type"), format!("unknown type {ty:?}")));
                }
                out.push((x.name, ty, x.description));
            }
            Kind::Extract { model: nonempty("model", c.model)?, fields: out }
        }
        "categorize" => {
            let c: CategorizeConfig = cfg(id, i, o)?;
            if c.categories.len() < 2 {
                return Err(err("categories", "categories is required: at least two strings".into()));
            }
            Kind::Categorize { model: nonempty("model", c.model)?, categories: c.categories }
        }
        "http_request" => {
            let c: HttpRequestConfig = cfg(id, i, o)?;
            let method = c.method.unwrap_or_else(|| "GET".into()).to_ascii_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].contains(&method.as_str()) {
                return Err(err("method", format!("unsupported method {method:?}")));
            }
            let body = match c.body {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s),
                Some(other) => Some(other.to_string()),
            };
            Kind::HttpRequest { method, url: nonempty("url", c.url)?, headers: c.headers, body }
        }
        "web_fetch" => {
            let c: WebFetchConfig = cfg(id, i, o)?;
            Kind::WebFetch { url: nonempty("url", c.url)? }
        }
        "json_path" => {
            let c: JsonPathConfig = cfg(id, i, o)?;
            Kind::JsonPath { path: parse_path(&nonempty("path", c.path)?).map_err(|m| err("path", m))? }
        }
        "split" | "join" => {
            let c: SeparatorConfig = cfg(id, i, o)?;
            let separator = c.separator.unwrap_or_else(|| "\n".into());
            if kind == "split" {
                Kind::Split { separator }
            } else {
                Kind::Join { separator }
            }
        }
        "filter" => {
            let c: FilterConfig = cfg(id, i, o)?;
            if c.contains.is_none() && c.equals.is_none() && !c.not_empty {
                return Err(err("contains", "a filter needs contains, equals or not_empty: true".into()));
            }
            Kind::Filter { contains: c.contains, equals: c.equals, not_empty: c.not_empty }
        }
        "dedupe" => {
            let _: DedupeConfig = cfg(id, i, o)?;
            Kind::Dedupe
        }
        "condition" | "router" => {
            let c: ConditionConfig = cfg(id, i, o)?;
            let op = match c.op.as_deref().unwrap_or("not_empty") {
                "equals" => CondOp::Equals,
                "not_equals" => CondOp::NotEquals,
                "contains" => CondOp::Contains,
                "not_empty" => CondOp::NotEmpty,
                "empty" => CondOp::Empty,
                "gt" => CondOp::Gt,
                "lt" => CondOp::Lt,
                other => return Err(err("op", format!("unknown op {other:?} (equals, not_equals, contains, not_empty, empty, gt, lt)"))),
            };
            Kind::Condition { op, value: c.value.unwrap_or(Value::Null) }
        }
        "loop" | "loop_file" => {
            let c: LoopConfig = cfg(id, i, o)?;
            let concurrency = c.concurrency.unwrap_or(4) as usize;
            if concurrency == 0 || concurrency > MAX_LOOP_CONCURRENCY {
                return Err(err("concurrency", format!("concurrency is 1–{MAX_LOOP_CONCURRENCY}")));
            }
            let (body, first_input) = match (c.flow, c.saved_item_id) {
                (Some(doc), None) => {
                    let g = validate(&doc).map_err(sub_errors)?;
                    let first = g.inputs.first().map(|d| d.name.clone());
                    (LoopBody::Inline(g), first)
                }
                (None, Some(s)) => (LoopBody::Saved(s), None),
                _ => return Err(err("flow", "a loop needs flow (an inline flow document) or saved_item_id".into())),
            };
            let Some(item_input) = c.item_input.or(first_input) else {
                return Err(err("item_input", "item_input is required (the subflow input each item is bound to)".into()));
            };
            if let LoopBody::Inline(g) = &body {
                if !g.inputs.iter().any(|d| d.name == item_input) {
                    return Err(err("item_input", format!("the loop's flow has no input {item_input:?}")));
                }
            }
            Kind::Loop { body: Box::new(body), item_input, concurrency, over_file: kind == "loop_file" }
        }
        "subflow" => {
            let c: SubflowConfig = cfg(id, i, o)?;
            match (c.flow, c.saved_item_id) {
                (Some(doc), None) => Kind::Subflow { target: SubflowTarget::Inline(Box::new(validate(&doc).map_err(sub_errors)?)) },
                (None, Some(s)) => Kind::Subflow { target: SubflowTarget::Saved(s) },
                _ => return Err(err("saved_item_id", "a subflow needs saved_item_id or flow (an inline document)".into())),
            }
        }
        "write_file" => {
            let c: WriteFileConfig = cfg(id, i, o)?;
            Kind::WriteFile { file_name: nonempty("file_name", c.file_name)? }
        }
        "" => return Err(err("kind", "kind is required".into())),
        other => {
            return Err(err(
                "kind",
                format!(
                    "unknown node kind {other:?} (template, llm, agent, extract, categorize, http_request, web_fetch, json_path, split, join, filter, dedupe, condition, loop, loop_file, subflow, write_file)"
                ),
            ))
        }
    })
}

/// `$.a.b[0]`, `a.b.0`, `$[2].name`.
pub fn parse_path(p: &str) -> Result<Vec<PathStep>, String> {
    let mut s = p.trim();
    s = s.strip_prefix('$').unwrap_or(s);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let flush = |cur: &mut String, out: &mut Vec<PathStep>| {
        if !cur.is_empty() {
            out.push(match cur.parse::<usize>() {
                Ok(i) => PathStep::Index(i),
                Err(_) => PathStep::Key(std::mem::take(cur)),
            });
            cur.clear();
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '.' => flush(&mut cur, &mut out),
            '[' => {
                flush(&mut cur, &mut out);
                let mut idx = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    idx.push(c);
                }
                let idx = idx.trim().trim_matches(|c| c == '"' || c == '\'');
                out.push(match idx.parse::<usize>() {
                    Ok(i) => PathStep::Index(i),
                    Err(_) if !idx.is_empty() => PathStep::Key(idx.to_string()),
                    Err(_) => return Err(format!("invalid path {p:?}: empty []")),
                });
            }
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    Ok(out)
}

/// Kahn's algorithm, keeping document order among ready nodes.
fn topo_sort(nodes: Vec<Node>) -> Result<Vec<Node>, DocError> {
    let ids: HashMap<String, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id.clone(), i)).collect();
    let mut indeg = vec![0usize; nodes.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        let deps: HashSet<&str> = n.deps().collect();
        for d in deps {
            if let Some(&j) = ids.get(d) {
                indeg[i] += 1;
                users[j].push(i);
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..nodes.len()).filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &u in &users[i] {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.insert(u);
            }
        }
    }
    if order.len() < nodes.len() {
        let stuck = (0..nodes.len()).find(|i| !order.contains(i)).unwrap_or(0);
        return Err(DocError::node(&nodes[stuck].id, format!("nodes[{stuck}]"), "cycle: this node depends (through its inputs or after) on itself"));
    }
    let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_err(doc: Value) -> DocError {
        validate(&doc).err().and_then(|e| e.into_iter().next()).expect("an error")
    }

    #[test]
    fn chain_from_steps() {
        let g = validate(&json!({"name": "x", "inputs": [{"name": "topic", "data_type": "string"}],
            "steps": [{"id": "a", "kind": "llm", "model": "m", "prompt": "About {{topic}}"}, {"id": "b", "kind": "llm", "model": "m", "prompt": "Shorter: {{a}}"}],
            "outputs": [{"output_name": "out", "from": "b"}]}))
        .expect("valid");
        assert_eq!(g.nodes[1].after, vec!["a".to_string()]);
        assert_eq!(g.nodes[1].wires["a"], Ref::Node("a".into(), "text".into()));
        assert_eq!(g.outputs[0].1, Ref::Node("b".into(), "text".into()));
    }

    #[test]
    fn each_rule_names_node_and_field() {
        let e = first_err(json!({"name": "x", "nodes": [{"id": "a", "kind": "nope"}]}));
        assert_eq!((e.node.as_deref(), e.field.as_str()), (Some("a"), "nodes[0].kind"));
        let e = first_err(
            json!({"name": "x", "nodes": [{"id": "a", "kind": "template", "template": "{{b}}"}, {"id": "b", "kind": "template", "template": "{{a}}"}]}),
        );
        assert!(e.message.contains("cycle"), "{e}");
        let e = first_err(json!({"name": "x", "nodes": [{"id": "a", "kind": "join", "inputs": {"items": "ghost.items"}}]}));
        assert!(e.message.contains("dangling") && e.field == "nodes[0].inputs.items", "{e}");
        let e = first_err(
            json!({"name": "x", "nodes": [{"id": "t", "kind": "template", "template": "hi"}, {"id": "j", "kind": "join", "inputs": {"items": "t.text"}}]}),
        );
        assert!(e.message.contains("type mismatch"), "{e}");
        let e = first_err(json!({"name": "x", "nodes": [{"id": "j", "kind": "split"}]}));
        assert!(e.message.contains("missing required input"), "{e}");
        let e = first_err(json!({"name": "x", "nodes": [{"id": "a", "kind": "template", "template": "{{who}}"}]}));
        assert!(e.message.contains("placeholder"), "{e}");
        let e = first_err(json!({"name": "x", "inputs": [{"name": "user_id"}]}));
        assert_eq!(e.field, "inputs[0].name");
        let e = first_err(json!({"name": "x", "edges": [{"from": "a", "to": "b.x"}]}));
        assert!(e.message.contains("dangling"), "{e}");
    }

    #[test]
    fn render_and_paths() {
        let vars: HashMap<String, Value> = [("a".to_string(), json!("x")), ("n".to_string(), json!(3))].into();
        assert_eq!(render("{{a}}-{{ n }}-{{zz}}", &vars), "x-3-{{zz}}");
        assert_eq!(parse_path("$.a[0].b").expect("path"), vec![PathStep::Key("a".into()), PathStep::Index(0), PathStep::Key("b".into())]);
    }
}
