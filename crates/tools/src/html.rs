//! A small, forgiving HTML → readable text extractor.
//!
//! Not an HTML parser: it drops comments, declarations, tags and the content of non-visible
//! elements (`script`, `style`, `noscript`, `template`, `svg`, …), turns block elements into line
//! breaks, decodes common character references and collapses whitespace (except inside `pre`).
//! Runs in linear time on any input, well-formed or not.

/// Elements whose content is never shown as text.
const SKIP_CONTENT: &[&str] = &["script", "style", "noscript", "template", "svg", "math", "canvas", "iframe", "object"];

/// Elements separated from their surroundings by a blank line.
const PARAGRAPH: &[&str] = &["p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "blockquote", "pre", "title"];

/// Elements that start on a new line.
const BLOCK: &[&str] = &[
    "br",
    "li",
    "dt",
    "dd",
    "tr",
    "div",
    "header",
    "footer",
    "nav",
    "section",
    "article",
    "aside",
    "main",
    "form",
    "figure",
    "figcaption",
    "address",
    "hr",
    "option",
    "caption",
    "fieldset",
    "legend",
    "details",
    "summary",
    "body",
    "html",
    "head",
];

/// Extract readable text from an HTML document.
pub fn html_to_text(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let bytes = html.as_bytes();
    let mut out = Out::with_capacity(html.len() / 2);
    let mut pre_depth = 0usize;
    let mut i = 0;
    let mut text_start = 0;

    while i < bytes.len() {
        if bytes[i] != b'<' {
            i += 1;
            continue;
        }
        // Comments, doctype, CDATA, processing instructions.
        if lower[i..].starts_with("<!--") {
            out.text(&html[text_start..i], pre_depth > 0);
            i = find_from(&lower, i + 4, "-->").map_or(bytes.len(), |e| e + 3);
            text_start = i;
            continue;
        }
        let next = bytes.get(i + 1).copied().unwrap_or(0);
        if next == b'!' || next == b'?' {
            out.text(&html[text_start..i], pre_depth > 0);
            i = find_from(&lower, i + 2, ">").map_or(bytes.len(), |e| e + 1);
            text_start = i;
            continue;
        }
        let closing = next == b'/';
        let name_start = if closing { i + 2 } else { i + 1 };
        if !bytes.get(name_start).is_some_and(u8::is_ascii_alphabetic) {
            // A literal '<' in text.
            i += 1;
            continue;
        }
        let mut name_end = name_start;
        while bytes.get(name_end).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b':') {
            name_end += 1;
        }
        out.text(&html[text_start..i], pre_depth > 0);
        let name = &lower[name_start..name_end];
        let tag_end = tag_end(bytes, name_end);

        if !closing && SKIP_CONTENT.contains(&name) {
            let self_closing = tag_end >= 2 && bytes[tag_end - 2] == b'/';
            i = if self_closing {
                tag_end
            } else {
                let close = format!("</{name}");
                find_closing(&lower, tag_end, &close)
            };
            text_start = i;
            continue;
        }

        if PARAGRAPH.contains(&name) {
            out.block(2);
        } else if BLOCK.contains(&name) {
            out.block(1);
        } else if matches!(name, "td" | "th") {
            out.space();
        }
        match (name, closing) {
            ("pre", false) => pre_depth += 1,
            ("pre", true) => pre_depth = pre_depth.saturating_sub(1),
            ("li", false) => out.raw("- "),
            _ => {}
        }
        i = tag_end;
        text_start = i;
    }
    out.text(&html[text_start..], pre_depth > 0);
    out.finish()
}

/// Index just past the `>` closing a tag whose name ends at `from` (quotes respected).
fn tag_end(bytes: &[u8], from: usize) -> usize {
    let mut quote: Option<u8> = None;
    let mut j = from;
    while j < bytes.len() {
        let b = bytes[j];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return j + 1,
            None => {}
        }
        j += 1;
    }
    bytes.len()
}

/// Index just past the end of the closing tag `close` (e.g. `</script`) at or after `from`, or
/// the end of input.
fn find_closing(lower: &str, from: usize, close: &str) -> usize {
    let mut at = from;
    while let Some(pos) = find_from(lower, at, close) {
        let after = pos + close.len();
        // `</scripts` is not `</script`.
        match lower.as_bytes().get(after) {
            Some(b) if b.is_ascii_alphanumeric() || *b == b'-' => at = after,
            _ => return find_from(lower, after, ">").map_or(lower.len(), |e| e + 1),
        }
    }
    lower.len()
}

fn find_from(haystack: &str, from: usize, needle: &str) -> Option<usize> {
    haystack.get(from..).and_then(|h| h.find(needle)).map(|p| p + from)
}

/// Output with whitespace normalization: runs of whitespace become one space, lines are
/// trimmed, at most one blank line in a row, no leading/trailing whitespace.
struct Out {
    s: String,
    pending_space: bool,
    pending_newlines: usize,
}

impl Out {
    fn with_capacity(n: usize) -> Self {
        Self { s: String::with_capacity(n), pending_space: false, pending_newlines: 0 }
    }

    fn block(&mut self, newlines: usize) {
        if !self.s.is_empty() {
            self.pending_newlines = self.pending_newlines.max(newlines);
        }
        self.pending_space = false;
    }

    fn space(&mut self) {
        self.pending_space = true;
    }

    fn flush(&mut self) {
        if self.pending_newlines > 0 {
            while self.s.ends_with(' ') {
                self.s.pop();
            }
            for _ in 0..self.pending_newlines {
                self.s.push('\n');
            }
            self.pending_newlines = 0;
            self.pending_space = false;
        } else if self.pending_space {
            if !self.s.is_empty() && !self.s.ends_with(['\n', ' ']) {
                self.s.push(' ');
            }
            self.pending_space = false;
        }
    }

    fn raw(&mut self, s: &str) {
        self.flush();
        self.s.push_str(s);
    }

    fn push_char(&mut self, c: char, pre: bool) {
        if pre {
            if c == '\r' {
                return;
            }
            self.flush();
            self.s.push(c);
        } else if c.is_whitespace() {
            self.pending_space = true;
        } else {
            self.flush();
            self.s.push(c);
        }
    }

    /// Emit a text node, decoding character references.
    fn text(&mut self, text: &str, pre: bool) {
        let mut rest = text;
        while let Some(amp) = rest.find('&') {
            for c in rest[..amp].chars() {
                self.push_char(c, pre);
            }
            rest = &rest[amp..];
            match decode_entity(rest) {
                Some((c, len)) => {
                    self.push_char(c, pre);
                    rest = &rest[len..];
                }
                None => {
                    self.push_char('&', pre);
                    rest = &rest[1..];
                }
            }
        }
        for c in rest.chars() {
            self.push_char(c, pre);
        }
    }

    fn finish(mut self) -> String {
        let end = self.s.trim_end().len();
        self.s.truncate(end);
        self.s
    }
}

/// Decode a character reference at the start of `s` (which starts with `&`): the character and
/// the length of the reference including `;`.
fn decode_entity(s: &str) -> Option<(char, usize)> {
    let semi = s.bytes().take(34).position(|b| b == b';')?;
    let body = &s[1..semi];
    let c = if let Some(num) = body.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse::<u32>().ok()?,
        };
        match code {
            0 => '\u{FFFD}',
            _ => char::from_u32(code).unwrap_or('\u{FFFD}'),
        }
    } else {
        named_entity(body)?
    };
    Some((c, semi + 1))
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ensp" | "emsp" | "thinsp" => ' ',
        "shy" | "zwnj" | "zwj" => return None,
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "lsaquo" => '‹',
        "rsaquo" => '›',
        "bull" => '•',
        "middot" => '·',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "deg" => '°',
        "plusmn" => '±',
        "times" => '×',
        "divide" => '÷',
        "para" => '¶',
        "sect" => '§',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "larr" => '←',
        "rarr" => '→',
        "uarr" => '↑',
        "darr" => '↓',
        "harr" => '↔',
        "le" => '≤',
        "ge" => '≥',
        "ne" => '≠',
        "minus" => '−',
        "frac12" => '½',
        "frac14" => '¼',
        "frac34" => '¾',
        "iexcl" => '¡',
        "iquest" => '¿',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::html_to_text;

    #[test]
    fn strips_tags_scripts_styles_and_comments() {
        let html = r#"<!DOCTYPE html><html><head><title>T &amp; C</title>
            <style>body { color: red }</style><script>var x = "<p>no</p>";</script></head>
            <body><!-- hidden --><h1>Hello</h1><p>One   two
            three.</p><ul><li>a</li><li>b</li></ul><p>x &lt; y &#8212; &#x41;</p>
            <noscript>enable js</noscript><div>last<br/>line</div></body></html>"#;
        assert_eq!(html_to_text(html), "T & C\n\nHello\n\nOne two three.\n\n- a\n- b\n\nx < y — A\n\nlast\nline");
    }

    #[test]
    fn keeps_pre_whitespace_and_literal_angle_brackets() {
        let html = "<p>1 < 2 and a&b</p><pre>fn main() {\n    x();\n}</pre>";
        assert_eq!(html_to_text(html), "1 < 2 and a&b\n\nfn main() {\n    x();\n}");
    }

    #[test]
    fn tolerates_broken_markup() {
        assert_eq!(html_to_text("<p>open <b>bold"), "open bold");
        assert_eq!(html_to_text("<script>never closed"), "");
        assert_eq!(html_to_text("a <!-- unterminated"), "a");
        assert_eq!(html_to_text("<a href='x>y'>link</a> after"), "link after");
        assert_eq!(html_to_text("&unknown; &#xZZ; &"), "&unknown; &#xZZ; &");
        assert_eq!(html_to_text("é<i>ü</i>"), "éü");
    }
}
