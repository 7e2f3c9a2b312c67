//! The README and docs/ link only to files inside the repository: a clone has no
//! `../shared/…` (the contract and design notes the project started from), so every
//! relative link must name a file or directory that exists in the checkout.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root")
}

/// Markdown files a reader of the repository sees: the README, docs/ and crate READMEs.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("docs/ is readable").flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    out
}

/// The targets of `[text](target)` links in `text`.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        if let Some(end) = rest.find(')') {
            out.push(rest[..end].trim().to_string());
            rest = &rest[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_docs_resolves_inside_the_repository() {
    let root = repo_root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in markdown_files(&root) {
        let text = std::fs::read_to_string(&file).expect("a readable markdown file");
        for target in link_targets(&text) {
            let path = target.split('#').next().unwrap_or("").split_whitespace().next().unwrap_or("");
            if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let resolved = file.parent().expect("a parent directory").join(path);
            let inside = resolved.canonicalize().ok().filter(|p| p.starts_with(&root));
            if inside.is_none() {
                broken.push(format!("{}: {target}", file.strip_prefix(&root).unwrap_or(&file).display()));
            }
        }
    }
    assert!(checked > 0, "the README links to files in docs/");
    assert!(broken.is_empty(), "links that leave the repository or name a missing file: {broken:#?}");
}
