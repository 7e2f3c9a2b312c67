//! Character-level JSON-schema state machine used to constrain tool calls.
//!
//! [`ToolCallMachine`] accepts exactly the strings
//! `<tool_call>` `\n`? `{"name": "<tool>", "arguments": <args>}` `\n`? `</tool_call>`
//! where `<tool>` is one of the offered tool names and `<args>` is a JSON object
//! valid for that tool's parameters schema, written in a canonical layout
//! (`": "` after keys, `", "` between members and items, no other whitespace).
//!
//! Every prefix the machine accepts can still be completed, so a decoder that
//! only picks tokens whose text the machine accepts always produces a valid call.
//!
//! Supported schema keywords: `type` (`object`, `array`, `string`, `number`,
//! `integer`, `boolean`, `null`, or a list of those), `properties`, `required`,
//! `additionalProperties` (an object without `properties` takes any keys only
//! when it is `true` or a schema), `items`, `enum`, `const`, `anyOf` / `oneOf`
//! (the first alternative that can start with the next character is taken).
//! Numbers are written without exponent; strings use no `\u` escapes. Keys that
//! need escaping are never offered.

use serde_json::Value;
use std::sync::Arc;

/// Longest integer part and fraction accepted in a number.
const MAX_INT_DIGITS: u8 = 15;
const MAX_FRAC_DIGITS: u8 = 10;

/// A compiled JSON schema.
#[derive(Debug, Clone)]
pub enum Schema {
    /// Any JSON value (objects take any keys).
    Any,
    String,
    Number,
    Integer,
    Boolean,
    Null,
    /// One of these serialized JSON values (`enum` / `const`).
    Literals(Arc<[Box<[char]>]>),
    Array(Arc<Schema>),
    Object(Arc<ObjectSchema>),
    /// The first alternative that can start with the next character.
    Union(Arc<[Schema]>),
}

#[derive(Debug, Clone)]
pub struct ObjectSchema {
    props: Vec<(Box<[char]>, Schema)>,
    /// Indexes into `props`.
    required: Vec<usize>,
    /// Any key (value: [`Schema::Any`]) instead of `props`.
    free: bool,
}

impl Schema {
    /// Compiles a JSON schema (see the module documentation for what is honoured).
    pub fn compile(v: &Value) -> Schema {
        let Some(obj) = v.as_object() else {
            // `true` / missing schema: anything.
            return Schema::Any;
        };
        if let Some(c) = obj.get("const") {
            return literals(std::slice::from_ref(c));
        }
        if let Some(Value::Array(items)) = obj.get("enum") {
            if !items.is_empty() {
                return literals(items);
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(alts)) = obj.get(key) {
                if !alts.is_empty() {
                    return Schema::Union(alts.iter().map(Schema::compile).collect());
                }
            }
        }
        match obj.get("type") {
            Some(Value::String(t)) => Self::of_type(t, obj),
            Some(Value::Array(ts)) => {
                let alts: Vec<Schema> = ts.iter().filter_map(Value::as_str).map(|t| Self::of_type(t, obj)).collect();
                if alts.is_empty() {
                    Schema::Any
                } else {
                    Schema::Union(alts.into())
                }
            }
            _ if obj.contains_key("properties") => Self::of_type("object", obj),
            _ => Schema::Any,
        }
    }

    fn of_type(t: &str, obj: &serde_json::Map<String, Value>) -> Schema {
        match t {
            "string" => Schema::String,
            "number" => Schema::Number,
            "integer" => Schema::Integer,
            "boolean" => Schema::Boolean,
            "null" => Schema::Null,
            "array" => Schema::Array(Arc::new(obj.get("items").map(Schema::compile).unwrap_or(Schema::Any))),
            "object" => {
                let mut props = Vec::new();
                if let Some(Value::Object(p)) = obj.get("properties") {
                    for (k, s) in p {
                        if k.chars().all(|c| c != '"' && c != '\\' && c >= ' ') {
                            props.push((k.chars().collect::<Box<[char]>>(), Schema::compile(s)));
                        }
                    }
                }
                let required = match obj.get("required") {
                    Some(Value::Array(r)) => {
                        r.iter().filter_map(Value::as_str).filter_map(|name| props.iter().position(|(k, _)| k.iter().copied().eq(name.chars()))).collect()
                    }
                    _ => Vec::new(),
                };
                let additional = match obj.get("additionalProperties") {
                    Some(Value::Bool(b)) => *b,
                    Some(Value::Object(_)) => true,
                    _ => false,
                };
                let free = props.is_empty() && additional;
                Schema::Object(Arc::new(ObjectSchema { props, required, free }))
            }
            _ => Schema::Any,
        }
    }

    /// Whether a value of this schema can begin with `c`.
    fn can_start(&self, c: char) -> bool {
        match self {
            Schema::Any => matches!(c, '"' | '-' | '0'..='9' | 't' | 'f' | 'n' | '{' | '['),
            Schema::String => c == '"',
            Schema::Number | Schema::Integer => c == '-' || c.is_ascii_digit(),
            Schema::Boolean => c == 't' || c == 'f',
            Schema::Null => c == 'n',
            Schema::Literals(l) => l.iter().any(|x| x.first() == Some(&c)),
            Schema::Array(_) => c == '[',
            Schema::Object(_) => c == '{',
            Schema::Union(alts) => alts.iter().any(|a| a.can_start(c)),
        }
    }
}

fn literals(values: &[Value]) -> Schema {
    let lits: Vec<Box<[char]>> = values.iter().map(|v| v.to_string().chars().collect()).collect();
    Schema::Literals(lits.into())
}

fn bool_literals() -> Schema {
    literals(&[Value::Bool(true), Value::Bool(false)])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrPhase {
    /// Before the opening `"`.
    Begin,
    Chars,
    /// After `\\`.
    Escape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumPhase {
    /// Before the first character.
    Begin,
    /// After `-`: a digit must follow.
    Sign,
    /// After a leading `0`.
    Zero,
    Int,
    /// After `.`: a digit must follow.
    Dot,
    Frac,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArrPhase {
    /// Before `[`.
    Begin,
    Open,
    AfterValue,
    /// After `,`: a space must follow.
    Comma,
    /// After `, `: an item must follow.
    Item,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ObjPhase {
    /// Before `{`.
    Begin,
    Open,
    /// After `"` of a key; the key so far.
    Key(String),
    /// After the key's closing `"`: `:` must follow (`usize::MAX` = free key).
    Colon(usize),
    /// After `:`: a space must follow.
    ColonSpace(usize),
    /// After `": `: the value must follow.
    Value(usize),
    AfterValue,
    /// After `,`: a space must follow.
    Comma,
    /// After `, `: `"` must follow.
    KeyOpen,
}

#[derive(Debug, Clone)]
enum Frame {
    /// A value of this schema must start with the next character.
    Start(Schema),
    Str {
        phase: StrPhase,
    },
    Num {
        phase: NumPhase,
        integer: bool,
        digits: u8,
    },
    Lit {
        lits: Arc<[Box<[char]>]>,
        alive: Vec<u32>,
        pos: usize,
    },
    Arr {
        item: Arc<Schema>,
        phase: ArrPhase,
    },
    Obj {
        schema: Arc<ObjectSchema>,
        seen: Vec<bool>,
        phase: ObjPhase,
    },
}

enum Step {
    Consumed,
    Reject,
    /// The frame's value is complete; `consumed` says whether `c` was part of it
    /// (otherwise `c` is fed to the parent).
    Pop {
        consumed: bool,
    },
    /// Push a frame and feed it `c`.
    Push(Frame),
}

/// Accepts the prefixes of one JSON value valid for a schema.
#[derive(Debug, Clone)]
pub struct JsonMachine {
    stack: Vec<Frame>,
}

impl JsonMachine {
    pub fn new(schema: Schema) -> Self {
        JsonMachine { stack: vec![Frame::Start(schema)] }
    }

    /// Whether the value is complete (nothing more may be written).
    pub fn is_done(&self) -> bool {
        self.stack.is_empty()
    }

    /// Whether the value may end here: complete, or a number / literal that is
    /// complete but could still be extended (such as `12` before `3`).
    pub fn can_end(&self) -> bool {
        match self.stack.as_slice() {
            [] => true,
            [Frame::Num { phase, .. }] => matches!(phase, NumPhase::Zero | NumPhase::Int | NumPhase::Frac),
            [Frame::Lit { lits, alive, pos }] => alive.iter().any(|&i| lits[i as usize].len() == *pos),
            _ => false,
        }
    }

    /// Feeds every character of `s`; `false` when one cannot continue a valid value.
    pub fn push_str_all(&mut self, s: &str) -> bool {
        s.chars().all(|c| self.push(c))
    }

    /// Feeds one character; `false` (and an unspecified state) when it cannot
    /// continue a valid value.
    pub fn push(&mut self, c: char) -> bool {
        loop {
            let Some(top) = self.stack.last_mut() else {
                return false;
            };
            match step(top, c) {
                Step::Consumed => return true,
                Step::Reject => return false,
                Step::Pop { consumed } => {
                    self.stack.pop();
                    if consumed {
                        return true;
                    }
                }
                Step::Push(frame) => self.stack.push(frame),
            }
        }
    }
}

fn step(frame: &mut Frame, c: char) -> Step {
    match frame {
        Frame::Start(schema) => match start(schema, c) {
            Some(f) => {
                *frame = f;
                step(frame, c)
            }
            None => Step::Reject,
        },
        Frame::Str { phase } => match (*phase, c) {
            (StrPhase::Begin, '"') => {
                *phase = StrPhase::Chars;
                Step::Consumed
            }
            (StrPhase::Begin, _) => Step::Reject,
            (StrPhase::Escape, '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't') => {
                *phase = StrPhase::Chars;
                Step::Consumed
            }
            (StrPhase::Escape, _) => Step::Reject,
            (StrPhase::Chars, '"') => Step::Pop { consumed: true },
            (StrPhase::Chars, '\\') => {
                *phase = StrPhase::Escape;
                Step::Consumed
            }
            (StrPhase::Chars, c) if c < ' ' => Step::Reject,
            (StrPhase::Chars, _) => Step::Consumed,
        },
        Frame::Num { phase, integer, digits } => {
            let can_end = matches!(phase, NumPhase::Zero | NumPhase::Int | NumPhase::Frac);
            let next = match (*phase, c) {
                (NumPhase::Begin, '-') => Some(NumPhase::Sign),
                (NumPhase::Begin, '0') => Some(NumPhase::Zero),
                // `-0` is a float for most parsers: not an integer.
                (NumPhase::Sign, '0') if !*integer => Some(NumPhase::Zero),
                (NumPhase::Begin | NumPhase::Sign, '1'..='9') => Some(NumPhase::Int),
                (NumPhase::Int, '0'..='9') if *digits < MAX_INT_DIGITS => Some(NumPhase::Int),
                (NumPhase::Zero | NumPhase::Int, '.') if !*integer => Some(NumPhase::Dot),
                (NumPhase::Dot, '0'..='9') => Some(NumPhase::Frac),
                (NumPhase::Frac, '0'..='9') if *digits < MAX_FRAC_DIGITS => Some(NumPhase::Frac),
                _ => None,
            };
            match next {
                Some(p) => {
                    *digits = if p == *phase && c.is_ascii_digit() { digits.saturating_add(1) } else { u8::from(c.is_ascii_digit()) };
                    *phase = p;
                    Step::Consumed
                }
                None if can_end => Step::Pop { consumed: false },
                None => Step::Reject,
            }
        }
        Frame::Lit { lits, alive, pos } => {
            let ext: Vec<u32> = alive.iter().copied().filter(|&i| lits[i as usize].get(*pos) == Some(&c)).collect();
            if ext.is_empty() {
                return if alive.iter().any(|&i| lits[i as usize].len() == *pos) { Step::Pop { consumed: false } } else { Step::Reject };
            }
            *alive = ext;
            *pos += 1;
            if alive.iter().all(|&i| lits[i as usize].len() == *pos) {
                Step::Pop { consumed: true }
            } else {
                Step::Consumed
            }
        }
        Frame::Arr { item, phase } => match (*phase, c) {
            (ArrPhase::Begin, '[') => {
                *phase = ArrPhase::Open;
                Step::Consumed
            }
            (ArrPhase::Begin, _) => Step::Reject,
            (ArrPhase::Open, ']') | (ArrPhase::AfterValue, ']') => Step::Pop { consumed: true },
            (ArrPhase::Open, _) | (ArrPhase::Item, _) => {
                *phase = ArrPhase::AfterValue;
                Step::Push(Frame::Start((**item).clone()))
            }
            (ArrPhase::AfterValue, ',') => {
                *phase = ArrPhase::Comma;
                Step::Consumed
            }
            (ArrPhase::Comma, ' ') => {
                *phase = ArrPhase::Item;
                Step::Consumed
            }
            _ => Step::Reject,
        },
        Frame::Obj { schema, seen, phase } => obj_step(schema, seen, phase, c),
    }
}

/// The initial frame of a value of `schema` that starts with `c` (the frame is
/// then fed `c`), or `None` when no such value starts with `c`.
fn start(schema: &Schema, c: char) -> Option<Frame> {
    Some(match schema {
        Schema::Any => match c {
            '"' => Frame::Str { phase: StrPhase::Begin },
            '-' | '0'..='9' => Frame::Num { phase: NumPhase::Begin, integer: false, digits: 0 },
            't' | 'f' => return start(&bool_literals(), c),
            'n' => return start(&literals(&[Value::Null]), c),
            '[' => Frame::Arr { item: Arc::new(Schema::Any), phase: ArrPhase::Begin },
            '{' => Frame::Obj { schema: free_object(), seen: Vec::new(), phase: ObjPhase::Begin },
            _ => return None,
        },
        Schema::String if c == '"' => Frame::Str { phase: StrPhase::Begin },
        Schema::Number | Schema::Integer if c == '-' || c.is_ascii_digit() => {
            Frame::Num { phase: NumPhase::Begin, integer: matches!(schema, Schema::Integer), digits: 0 }
        }
        Schema::Boolean => return start(&bool_literals(), c),
        Schema::Null => return start(&literals(&[Value::Null]), c),
        Schema::Literals(lits) if schema.can_start(c) => Frame::Lit { lits: lits.clone(), alive: (0..lits.len() as u32).collect(), pos: 0 },
        Schema::Array(item) if c == '[' => Frame::Arr { item: item.clone(), phase: ArrPhase::Begin },
        Schema::Object(o) if c == '{' => Frame::Obj { schema: o.clone(), seen: vec![false; o.props.len()], phase: ObjPhase::Begin },
        Schema::Union(alts) => return alts.iter().find(|a| a.can_start(c)).and_then(|a| start(a, c)),
        _ => return None,
    })
}

fn free_object() -> Arc<ObjectSchema> {
    Arc::new(ObjectSchema { props: Vec::new(), required: Vec::new(), free: true })
}

fn obj_step(schema: &Arc<ObjectSchema>, seen: &mut [bool], phase: &mut ObjPhase, c: char) -> Step {
    let missing_required = || schema.required.iter().any(|&i| !seen[i]);
    let any_unseen = || schema.free || seen.iter().any(|s| !s);
    match phase {
        ObjPhase::Begin if c == '{' => {
            *phase = ObjPhase::Open;
            Step::Consumed
        }
        ObjPhase::Open if c == '}' && !missing_required() => Step::Pop { consumed: true },
        ObjPhase::Open | ObjPhase::KeyOpen if c == '"' && any_unseen() => {
            *phase = ObjPhase::Key(String::new());
            Step::Consumed
        }
        ObjPhase::Key(buf) => {
            if schema.free {
                return match c {
                    '"' if !buf.is_empty() => {
                        *phase = ObjPhase::Colon(usize::MAX);
                        Step::Consumed
                    }
                    '"' | '\\' => Step::Reject,
                    c if c < ' ' => Step::Reject,
                    c => {
                        buf.push(c);
                        Step::Consumed
                    }
                };
            }
            if c == '"' {
                return match schema.props.iter().enumerate().position(|(i, (k, _))| !seen[i] && k.iter().copied().eq(buf.chars())) {
                    Some(i) => {
                        *phase = ObjPhase::Colon(i);
                        Step::Consumed
                    }
                    None => Step::Reject,
                };
            }
            let n = buf.chars().count();
            let extends = schema.props.iter().enumerate().any(|(i, (k, _))| !seen[i] && k.len() > n && k[n] == c && k[..n].iter().copied().eq(buf.chars()));
            if extends {
                buf.push(c);
                Step::Consumed
            } else {
                Step::Reject
            }
        }
        ObjPhase::Colon(i) if c == ':' => {
            *phase = ObjPhase::ColonSpace(*i);
            Step::Consumed
        }
        ObjPhase::ColonSpace(i) if c == ' ' => {
            *phase = ObjPhase::Value(*i);
            Step::Consumed
        }
        ObjPhase::Value(i) => {
            let i = *i;
            *phase = ObjPhase::AfterValue;
            if i == usize::MAX {
                Step::Push(Frame::Start(Schema::Any))
            } else {
                seen[i] = true;
                Step::Push(Frame::Start(schema.props[i].1.clone()))
            }
        }
        ObjPhase::AfterValue if c == '}' && !missing_required() => Step::Pop { consumed: true },
        ObjPhase::AfterValue if c == ',' && any_unseen() => {
            *phase = ObjPhase::Comma;
            Step::Consumed
        }
        ObjPhase::Comma if c == ' ' => {
            *phase = ObjPhase::KeyOpen;
            Step::Consumed
        }
        _ => Step::Reject,
    }
}

/// Where a [`ToolCallMachine`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `<tool_call>`, the line break and `{"name": "`.
    Open,
    /// The tool name (without quotes).
    Name,
    /// `", "arguments": `.
    Middle,
    /// The arguments object.
    Arguments,
    /// `}`, the line break and `</tool_call>`.
    Close,
    Done,
}

const OPEN_TAG: &str = "<tool_call>";
const HEAD: &str = "{\"name\": \"";
const MIDDLE: &str = "\", \"arguments\": ";
const CLOSE_TAG: &str = "</tool_call>";

#[derive(Debug, Clone)]
enum State {
    /// Matching `<tool_call>` (position in chars).
    Tag(usize),
    /// After `<tool_call>`: an optional `\n`, then `{`.
    AfterTag,
    /// Matching `{"name": "` from this position.
    Head(usize),
    Name(String),
    Middle(usize, usize),
    Args(usize, JsonMachine),
    /// Expecting the outer `}`.
    Brace,
    /// After `}`: an optional `\n`, then `<`.
    AfterBrace,
    /// Matching `</tool_call>` from this position.
    CloseTag(usize),
    Done,
}

/// Accepts the prefixes of one Hermes-style tool call (see the module docs).
#[derive(Debug, Clone)]
pub struct ToolCallMachine {
    tools: Arc<[(String, Schema)]>,
    state: State,
}

/// Tool names and their compiled parameter schemas.
pub fn compile_tools<'a>(tools: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Arc<[(String, Schema)]> {
    tools
        .into_iter()
        .filter(|(name, _)| !name.is_empty() && name.chars().all(|c| c != '"' && c != '\\' && c >= ' '))
        .map(|(name, params)| {
            let schema = match Schema::compile(params) {
                s @ Schema::Object(_) => s,
                // The arguments must be an object.
                _ => Schema::Object(free_object()),
            };
            (name.to_string(), schema)
        })
        .collect()
}

impl ToolCallMachine {
    pub fn new(tools: Arc<[(String, Schema)]>) -> Self {
        ToolCallMachine { tools, state: State::Tag(0) }
    }

    pub fn part(&self) -> Part {
        match self.state {
            State::Tag(_) | State::AfterTag | State::Head(_) => Part::Open,
            State::Name(_) => Part::Name,
            State::Middle(..) => Part::Middle,
            State::Args(..) => Part::Arguments,
            State::Brace | State::AfterBrace | State::CloseTag(_) => Part::Close,
            State::Done => Part::Done,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The chosen tool, once its name is complete.
    pub fn tool_name(&self) -> Option<&str> {
        match &self.state {
            State::Middle(i, _) | State::Args(i, _) => Some(self.tools[*i].0.as_str()),
            _ => None,
        }
    }

    /// Feeds every character of `s`; `false` when one cannot continue a valid call.
    pub fn push_str(&mut self, s: &str) -> bool {
        s.chars().all(|c| self.push(c))
    }

    /// Whether `s` would be accepted (the state is left unchanged).
    pub fn accepts(&self, s: &str) -> bool {
        self.clone().push_str(s)
    }

    pub fn push(&mut self, c: char) -> bool {
        let nth = |s: &str, i: usize| s.chars().nth(i);
        match &mut self.state {
            State::Tag(i) => {
                if nth(OPEN_TAG, *i) != Some(c) {
                    return false;
                }
                *i += 1;
                if *i == OPEN_TAG.chars().count() {
                    self.state = State::AfterTag;
                }
                true
            }
            State::AfterTag => {
                if c == '\n' {
                    self.state = State::Head(0);
                    true
                } else if c == '{' {
                    self.state = State::Head(1);
                    true
                } else {
                    false
                }
            }
            State::Head(i) => {
                if nth(HEAD, *i) != Some(c) {
                    return false;
                }
                *i += 1;
                if *i == HEAD.chars().count() {
                    self.state = State::Name(String::new());
                }
                true
            }
            State::Name(buf) => {
                if c == '"' {
                    match self.tools.iter().position(|(n, _)| n == buf) {
                        Some(i) => {
                            self.state = State::Middle(i, 1);
                            true
                        }
                        None => false,
                    }
                } else {
                    buf.push(c);
                    self.tools.iter().any(|(n, _)| n.starts_with(buf.as_str()))
                }
            }
            State::Middle(i, pos) => {
                if nth(MIDDLE, *pos) != Some(c) {
                    return false;
                }
                *pos += 1;
                if *pos == MIDDLE.chars().count() {
                    let schema = self.tools[*i].1.clone();
                    self.state = State::Args(*i, JsonMachine::new(schema));
                }
                true
            }
            State::Args(_, m) => {
                if !m.push(c) {
                    return false;
                }
                if m.is_done() {
                    self.state = State::Brace;
                }
                true
            }
            State::Brace => {
                if c == '}' {
                    self.state = State::AfterBrace;
                    true
                } else {
                    false
                }
            }
            State::AfterBrace => {
                if c == '\n' {
                    self.state = State::CloseTag(0);
                    true
                } else if c == '<' {
                    self.state = State::CloseTag(1);
                    true
                } else {
                    false
                }
            }
            State::CloseTag(i) => {
                if nth(CLOSE_TAG, *i) != Some(c) {
                    return false;
                }
                *i += 1;
                if *i == CLOSE_TAG.chars().count() {
                    self.state = State::Done;
                }
                true
            }
            State::Done => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tools() -> Arc<[(String, Schema)]> {
        let weather = json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "detailed": {"type": "boolean"},
                "where": {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}, "required": ["lat", "lon"]},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["city", "unit"]
        });
        let now = json!({"type": "object", "properties": {}});
        compile_tools([("get_weather", &weather), ("now", &now)])
    }

    fn accepts(s: &str) -> bool {
        ToolCallMachine::new(tools()).accepts(s)
    }

    fn complete(s: &str) -> bool {
        let mut m = ToolCallMachine::new(tools());
        m.push_str(s) && m.is_done()
    }

    #[test]
    fn accepts_valid_calls_only() {
        let ok = [
            "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call>",
            "<tool_call>{\"name\": \"now\", \"arguments\": {}}</tool_call>",
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"celsius\", \"city\": \"Paris \\\"FR\\\"\"}}\n</tool_call>",
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"unit\": \"fahrenheit\", \"days\": -12, \"detailed\": false, \
             \"where\": {\"lon\": 10.75, \"lat\": 59.9}, \"tags\": [\"a\", \"b\"]}}\n</tool_call>",
        ];
        for s in ok {
            assert!(complete(s), "{s}");
        }
        let bad = [
            // unknown tool name
            "<tool_call>\n{\"name\": \"rm_rf\"",
            // required key missing
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}",
            // value outside the enum
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"kelvin\"",
            // extra key
            "<tool_call>\n{\"name\": \"now\", \"arguments\": {\"x\"",
            // duplicate key
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"a\", \"city\"",
            // wrong types
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"days\": 1.5",
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"days\": \"3\"",
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"detailed\": 1",
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"tags\": [1",
            // nested object: required key missing, extra key
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"where\": {\"lat\": 1}",
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"where\": {\"alt\"",
            // leading zero, raw control character in a string
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"days\": 01",
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"a\nb",
            // text around the call
            "Sure! <tool_call>",
            "<tool_call>\n{\"name\": \"now\", \"arguments\": {}}\n</tool_call> done",
        ];
        for s in bad {
            assert!(!accepts(s), "{s}");
        }
        // A name that is a prefix of another is accepted only when complete.
        assert!(accepts("<tool_call>\n{\"name\": \"no"));
        assert!(!accepts("<tool_call>\n{\"name\": \"no\""));
    }

    /// A toy vocabulary: whole words, JSON punctuation, single characters and
    /// junk. Greedy "decoding" with a pseudo-random preference order must always
    /// end in a valid call, whatever the order.
    #[test]
    fn every_masked_path_yields_valid_json() {
        let mut vocab: Vec<String> = [
            "<tool_call>",
            "\n",
            "<",
            "tool",
            "_call",
            ">",
            "{\"",
            "{\"name\": \"",
            "name",
            "\": \"",
            "\"",
            "\", \"",
            "arguments",
            "\": ",
            "{",
            "}",
            "}}",
            "}\n",
            "</tool_call>",
            "</",
            "[",
            "]",
            "[\"",
            "\"]",
            ", ",
            ",",
            " ",
            ":",
            "get_weather",
            "get",
            "_weather",
            "now",
            "city",
            "unit",
            "days",
            "detailed",
            "where",
            "lat",
            "lon",
            "tags",
            "celsius",
            "fahrenheit",
            "cel",
            "sius",
            "true",
            "false",
            "tr",
            "ue",
            "-",
            "0",
            "1",
            "42",
            ".",
            "5",
            "Paris",
            "Oslo",
            " the",
            "\\",
            "\\n",
            "null",
            "x",
            "é",
            "😀",
            "kelvin",
            "\"}",
            "\"}}",
            "\"]}",
            "}}\n",
            "\n</tool_call>",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        vocab.extend("abcdefghijklmnopqrstuvwxyz{}[]\",: \n<>/_".chars().map(|c| c.to_string()));
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut names = std::collections::HashSet::new();
        for run in 0..300 {
            let mut m = ToolCallMachine::new(tools());
            let mut out = String::new();
            let mut steps = 0;
            while !m.is_done() {
                steps += 1;
                assert!(steps < 400, "run {run} does not terminate: {out}");
                // Random preference order, but after a while prefer closing tokens
                // so that runs terminate.
                let mut order: Vec<usize> = (0..vocab.len()).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, (next() % (i as u64 + 1)) as usize);
                }
                if steps > 40 {
                    order.sort_by_key(|&i| !matches!(vocab[i].as_str(), "\"" | "}" | "]" | "\"}" | "}}" | "\n</tool_call>" | "</tool_call>" | "1"));
                }
                let pick = order.into_iter().find(|&i| m.accepts(&vocab[i]));
                let Some(i) = pick else { panic!("run {run}: dead end after {out:?}") };
                assert!(m.push_str(&vocab[i]));
                out.push_str(&vocab[i]);
            }
            let body = out.trim_start_matches("<tool_call>").trim_end_matches("</tool_call>").trim();
            let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("run {run}: {e}: {out}"));
            let name = v["name"].as_str().unwrap_or_default().to_string();
            let args = v["arguments"].as_object().unwrap_or_else(|| panic!("run {run}: arguments not an object: {out}"));
            match name.as_str() {
                "now" => assert!(args.is_empty(), "{out}"),
                "get_weather" => {
                    assert!(args["city"].is_string(), "{out}");
                    assert!(["celsius", "fahrenheit"].contains(&args["unit"].as_str().unwrap_or_default()), "{out}");
                    let known = ["city", "unit", "days", "detailed", "where", "tags"];
                    assert!(args.keys().all(|k| known.contains(&k.as_str())), "{out}");
                    if let Some(d) = args.get("days") {
                        assert!(d.is_i64(), "{out}");
                    }
                    if let Some(d) = args.get("detailed") {
                        assert!(d.is_boolean(), "{out}");
                    }
                    if let Some(w) = args.get("where") {
                        assert!(w["lat"].is_number() && w["lon"].is_number() && w.as_object().map(|o| o.len()) == Some(2), "{out}");
                    }
                    if let Some(t) = args.get("tags") {
                        assert!(t.as_array().is_some_and(|a| a.iter().all(Value::is_string)), "{out}");
                    }
                }
                other => panic!("unknown tool {other:?}: {out}"),
            }
            names.insert(name);
        }
        assert_eq!(names.len(), 2, "both tools are reachable");
    }

    #[test]
    fn schema_features() {
        let m = |schema: Value, s: &str| {
            let mut j = JsonMachine::new(Schema::compile(&schema));
            j.push_str_all(s) && j.can_end()
        };
        assert!(m(json!({"type": "integer"}), "-120"));
        assert!(!m(json!({"type": "integer"}), "1.5"));
        assert!(!m(json!({"type": "integer"}), "-0"));
        assert!(m(json!({"type": "number"}), "-0.5"));
        assert!(m(json!({"type": "number"}), "0.25"));
        assert!(!m(json!({"type": "number"}), "1."));
        assert!(m(json!({"enum": [1, 10, "a"]}), "1"));
        assert!(m(json!({"enum": [1, 10, "a"]}), "10"));
        assert!(!m(json!({"enum": [1, 10, "a"]}), "100"));
        assert!(m(json!({"const": "x"}), "\"x\""));
        assert!(m(json!({"type": ["string", "null"]}), "null"));
        assert!(m(json!({"type": ["string", "null"]}), "\"s\""));
        assert!(!m(json!({"type": ["string", "null"]}), "1"));
        assert!(m(json!({"anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "boolean"}}]}), "[true, false]"));
        assert!(m(json!({"type": "array"}), "[1, \"a\", {\"k\": [null]}]"));
        assert!(m(json!({"type": "object", "additionalProperties": true}), "{\"any\": {\"thing\": 1.5}}"));
        assert!(!m(json!({"type": "object"}), "{\"any\": 1}"));
        assert!(m(json!({"type": "object"}), "{}"));
        assert!(m(json!({"type": "string"}), "\"tab\\t quote\\\" é\""));
        assert!(!m(json!({"type": "string"}), "\"\\u0041\""));
    }
}
