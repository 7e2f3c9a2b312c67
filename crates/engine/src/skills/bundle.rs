//! Pure rules of a skill bundle: file paths inside a skill, the SKILL.md front matter,
//! the sync content and manifest hashes (byte-for-byte the SDK's `gumloop/sync/hashing.py`)
//! and install names (`gumloop/sync/markers.py`).

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;
use wire::{ApiError, ErrorCode};

/// Longest accepted path inside a skill, in bytes.
const MAX_PATH_BYTES: usize = 1024;

fn invalid_path(raw: &str, why: &str) -> ApiError {
    let shown: String = raw.chars().filter(|c| !c.is_control()).take(120).collect();
    ApiError::new(ErrorCode::InvalidFileName, format!("Invalid file name {shown:?} in files: {why}.")).param("files")
}

/// Checks a client-supplied path inside a skill (`SKILL.md`, `scripts/run.py`) and
/// returns its canonical form. Rejected, never rewritten: absolute or drive paths,
/// backslashes, empty, `.` or `..` components, control characters, the sync marker
/// file, components over 255 bytes. Components are NFC-normalized.
pub fn check_path(raw: &str) -> Result<String, ApiError> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(invalid_path(raw, "it is empty"));
    }
    if t.len() > MAX_PATH_BYTES {
        return Err(invalid_path(raw, "it is longer than 1024 bytes"));
    }
    if t.chars().any(|c| c.is_control()) {
        return Err(invalid_path(raw, "it contains NUL or control characters"));
    }
    if t.contains('\\') {
        return Err(invalid_path(raw, "it contains a backslash (use / between folders)"));
    }
    if t.starts_with('/') {
        return Err(invalid_path(raw, "it is an absolute path"));
    }
    let b = t.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err(invalid_path(raw, "it is a drive path"));
    }
    let mut parts = Vec::new();
    for part in t.split('/') {
        match part {
            "" => return Err(invalid_path(raw, "it has an empty path component")),
            "." | ".." => return Err(invalid_path(raw, "it has a . or .. component")),
            p if p.len() > 255 => return Err(invalid_path(raw, "a path component is longer than 255 bytes")),
            p if p.trim() != p => return Err(invalid_path(raw, "a path component starts or ends with a space")),
            p => parts.push(p.nfc().collect::<String>()),
        }
    }
    if parts.last().map(String::as_str) == Some(wire::skills::SYNC_MARKER_FILENAME) {
        return Err(invalid_path(raw, "the name .gumloop.json is reserved for gumloop sync"));
    }
    Ok(parts.join("/"))
}

/// The file whose front matter and body describe the skill: `SKILL.md` at the root
/// (any case), else the only root Markdown file, else the first root Markdown file.
pub fn main_file<'a>(paths: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let root_md: Vec<&str> = paths.into_iter().filter(|p| !p.contains('/') && (p.to_ascii_lowercase().ends_with(".md"))).collect();
    root_md.iter().find(|p| p.eq_ignore_ascii_case("SKILL.md")).copied().or_else(|| {
        let mut sorted = root_md.clone();
        sorted.sort();
        sorted.first().copied()
    })
}

/// What a skill's main file says about it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Described {
    pub name: Option<String>,
    pub description: Option<String>,
    /// The body after the front matter.
    pub instructions: String,
}

/// Parses YAML-style front matter (`---` lines around `key: value` pairs; `>`/`|` block
/// values and quotes supported) and returns `name`, `description` and the body.
pub fn describe(text: &str) -> Described {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines();
    let first = lines.next().map(str::trim_end);
    if first != Some("---") {
        return Described { instructions: text.trim().to_string(), ..Default::default() };
    }
    let mut fm: Vec<&str> = Vec::new();
    let mut closed = false;
    let mut consumed = first.map(|l| l.len() + 1).unwrap_or(0);
    for line in lines.by_ref() {
        consumed += line.len() + 1;
        if line.trim_end() == "---" || line.trim_end() == "..." {
            closed = true;
            break;
        }
        fm.push(line);
    }
    if !closed {
        return Described { instructions: text.trim().to_string(), ..Default::default() };
    }
    let body = text.get(consumed.min(text.len())..).unwrap_or("").trim().to_string();
    let mut out = Described { instructions: body, ..Default::default() };
    let mut i = 0;
    while i < fm.len() {
        let line = fm[i];
        i += 1;
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else { continue };
        let key = key.trim();
        let mut value = value.trim().to_string();
        if value == ">" || value == "|" || value == ">-" || value == "|-" {
            let fold = value.starts_with('>');
            let mut block = Vec::new();
            while i < fm.len() && (fm[i].starts_with([' ', '\t']) || fm[i].trim().is_empty()) {
                block.push(fm[i].trim());
                i += 1;
            }
            value = block.join(if fold { " " } else { "\n" }).trim().to_string();
        } else if value.len() >= 2 && ((value.starts_with('"') && value.ends_with('"')) || (value.starts_with('\'') && value.ends_with('\''))) {
            value = value[1..value.len() - 1].to_string();
        }
        let value = Some(value).filter(|v| !v.is_empty());
        match key {
            "name" => out.name = value,
            "description" => out.description = value,
            _ => {}
        }
    }
    out
}

/// A description from the body when the front matter has none: its first paragraph
/// that is not a heading.
pub fn first_paragraph(body: &str) -> Option<String> {
    let para: Vec<&str> = body.split("\n\n").map(str::trim).find(|p| !p.is_empty() && !p.starts_with('#'))?.lines().map(str::trim).collect();
    let text = para.join(" ");
    Some(text.chars().take(1024).collect())
}

/// The stem of a path's last component (`docs/my-skill.md` → `my-skill`).
pub fn stem(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    match base.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => base,
    }
}

fn frame(out: &mut Sha256, bytes: &[u8]) {
    out.update((bytes.len() as u64).to_be_bytes());
    out.update(bytes);
}

/// Incremental v1 content hash of one skill: feed files in ascending path (byte) order.
pub struct ContentHasher(Sha256);

impl Default for ContentHasher {
    fn default() -> Self {
        let mut h = Sha256::new();
        h.update([1u8]);
        ContentHasher(h)
    }
}

impl ContentHasher {
    /// Starts the frame of one file of `len` bytes; its bytes follow with [`Self::bytes`].
    pub fn file(&mut self, path: &str, len: u64) {
        frame(&mut self.0, path.as_bytes());
        self.0.update(len.to_be_bytes());
    }
    pub fn bytes(&mut self, chunk: &[u8]) {
        self.0.update(chunk);
    }
    pub fn finish(self) -> String {
        format!("{:x}", self.0.finalize())
    }
}

/// SDK `compute_content_hash` of complete in-memory files.
pub fn content_hash(files: &[(&str, &[u8])]) -> String {
    let mut sorted = files.to_vec();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut h = ContentHasher::default();
    for (p, c) in sorted {
        h.file(p, c.len() as u64);
        h.bytes(c);
    }
    h.finish()
}

/// SDK `compute_manifest_hash`: (skill id, published version id, content hash) by skill id.
pub fn manifest_hash(skills: &[wire::skills::CliSyncBundleSkill]) -> String {
    let mut sorted: Vec<&wire::skills::CliSyncBundleSkill> = skills.iter().collect();
    sorted.sort_by(|a, b| a.skill_id.as_bytes().cmp(b.skill_id.as_bytes()));
    let mut h = Sha256::new();
    h.update([1u8]);
    for s in sorted {
        frame(&mut h, s.skill_id.as_bytes());
        frame(&mut h, s.published_version_id.as_bytes());
        frame(&mut h, s.content_hash.as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// A folder name for a skill: its name lower-cased, runs of anything but letters,
/// digits, `-`, `_` and `.` turned into `-`; `fallback` (the id) when nothing is left.
pub fn install_name(name: &str, fallback: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches(|c| c == '-' || c == '.').chars().take(100).collect();
    let reserved = [".", "..", wire::skills::SYNC_MARKER_FILENAME, wire::skills::SYNC_MANIFEST_FILENAME, ".gumloop-sync-work"];
    if out.is_empty() || reserved.contains(&out.as_str()) {
        fallback.to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked_not_rewritten() {
        assert_eq!(check_path("SKILL.md").unwrap(), "SKILL.md");
        assert_eq!(check_path("scripts/run.py").unwrap(), "scripts/run.py");
        for bad in ["../x", "a/../b", "/etc/passwd", "C:/x", "a\\b", "", "  ", "a//b", "./a", "a/.gumloop.json", "x\u{0}y"] {
            let e = check_path(bad).unwrap_err();
            assert_eq!((e.code.as_str(), e.param.as_deref()), ("invalid_file_name", Some("files")), "{bad:?}");
        }
    }

    #[test]
    fn front_matter_gives_name_and_description() {
        let d = describe("---\nname: pdf-tools\ndescription: >\n  Fill PDF\n  forms.\nlicense: MIT\n---\n\n# PDF\nUse pdftk.\n");
        assert_eq!((d.name.as_deref(), d.description.as_deref(), d.instructions.as_str()), (Some("pdf-tools"), Some("Fill PDF forms."), "# PDF\nUse pdftk."));
        let d = describe("---\nname: \"quoted\"\n---\nbody");
        assert_eq!((d.name.as_deref(), d.description, d.instructions.as_str()), (Some("quoted"), None, "body"));
        let d = describe("# Title\n\nFirst para\nline two.\n\nMore.");
        assert_eq!(d.name, None);
        assert_eq!(first_paragraph(&d.instructions).as_deref(), Some("First para line two."));
        assert_eq!(main_file(["b.md", "scripts/x.md", "a.md"]), Some("a.md"));
        assert_eq!(main_file(["b.md", "skill.MD"]), Some("skill.MD"));
        assert_eq!(stem("docs/my-skill.md"), "my-skill");
    }

    #[test]
    fn hashes_match_the_sdk() {
        // Values computed with gumloop 0.5.9 `gumloop.sync.hashing`.
        let h = content_hash(&[("b.txt", b"B"), ("SKILL.md", b"# hi\n")]);
        assert_eq!(h, "6587c18198b5561a8c6975dc114f00d7c9fa8e77369b3db47b27d13e3dc579fe");
        assert_eq!(manifest_hash(&[]), "4bf5122f344554c53bde2ebb8cd2b7e3d1600ad631c385a5d7cce23c7785459a");
    }

    #[test]
    fn install_names_are_safe() {
        assert_eq!(install_name("PDF Tools / v2", "skill_x"), "pdf-tools-v2");
        assert_eq!(install_name("..", "skill_x"), "skill_x");
        assert_eq!(install_name("???", "skill_x"), "skill_x");
    }
}
