//! The dependency direction of ARCHITECTURE.md, checked: server → engine → store, each
//! crate depending only on the crates below it, and no layer reaching for another's
//! technology (HTTP in the engine or store, SQL in the server or engine).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const INTERNAL: &[&str] = &["wire", "server", "engine", "llm", "tools", "store", "blobs", "testkit", "openloop"];

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Internal crates named in a manifest's `[dependencies]` (not dev-dependencies).
fn internal_deps(krate: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(crates_dir().join(krate).join("Cargo.toml")).expect("manifest");
    let mut in_deps = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if !in_deps {
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or("");
        if INTERNAL.contains(&name) {
            out.insert(name.to_string());
        }
    }
    out
}

#[test]
fn dependencies_point_down_only() {
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("wire", &[][..]),
        ("blobs", &[][..]),
        ("llm", &[][..]),
        ("tools", &[][..]),
        ("testkit", &[][..]),
        ("store", &["wire"][..]),
        ("engine", &["wire", "store", "llm", "tools", "blobs"][..]),
        // The server maps store records it streams (events) but runs no query itself.
        ("server", &["wire", "engine", "store", "blobs"][..]),
        ("openloop", &["wire", "server", "engine", "store", "llm", "tools", "blobs"][..]),
    ]);
    for (krate, ok) in &allowed {
        for dep in internal_deps(krate) {
            assert!(ok.contains(&dep.as_str()), "{krate} must not depend on {dep} (dependencies point down: server → engine → store)");
        }
    }
    // Every workspace crate is accounted for.
    for entry in std::fs::read_dir(crates_dir()).expect("crates/") {
        let name = entry.expect("entry").file_name().to_string_lossy().to_string();
        assert!(allowed.contains_key(name.as_str()), "new crate {name}: add it to this test with its allowed dependencies");
    }
}

/// Source files of a crate containing any of `needles` (as a whole path segment use).
fn uses(krate: &str, needles: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![crates_dir().join(krate).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                for n in needles {
                    if text.contains(&format!("{n}::")) {
                        hits.push(format!("{} uses {n}", path.display()));
                    }
                }
            }
        }
    }
    hits
}

#[test]
fn layers_keep_to_their_technology() {
    assert_eq!(uses("engine", &["axum", "hyper", "rusqlite", "sqlx"]), Vec::<String>::new(), "the engine knows no HTTP server and no SQL");
    assert_eq!(uses("server", &["rusqlite", "sqlx"]), Vec::<String>::new(), "the server knows no SQL");
    assert_eq!(uses("store", &["axum", "hyper", "llm", "reqwest"]), Vec::<String>::new(), "the store knows no HTTP and no LLMs");
}
