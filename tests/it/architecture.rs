//! The module graph of `src/`, read from the source: no file imports
//! another that (through others) imports it back, and every import points
//! down the layers of ARCHITECTURE.md: main, then the server and the
//! operator's commands, then the ways in (rest, ws, web), then app, then
//! what app combines (store, hub, auth, metrics, protocol), then the leaves.
//!
//! A file's imports are the `crate::` and `super::` paths it names outside
//! its unit tests (a `use` tree is expanded, braces and all), and, in a
//! module's own file, the paths through its child modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer of each top-level module: a file may import only modules of
/// its own layer or below (a larger number).
const LAYERS: &[(&str, u8)] = &[
    ("main", 0),
    ("server", 1),
    ("admin", 1),
    ("cli", 1),
    ("rest", 2),
    ("ws", 2),
    ("web", 2),
    ("app", 3),
    ("store", 4),
    ("hub", 4),
    ("auth", 4),
    ("metrics", 4),
    ("protocol", 4),
    ("limits", 4),
    ("push", 4),
    ("config", 5),
    ("cgroup", 5),
    ("malloc", 5),
    ("error", 5),
    ("log", 5),
    ("time", 5),
    ("media", 5),
    ("search", 5),
    ("proxy", 5),
    ("validate", 5),
    ("webpush", 5),
];

/// Modules that may import nothing of the crate (but the log macros).
const LEAVES: &[&str] = &[
    "metrics", "hub", "error", "time", "proxy", "cgroup", "malloc",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, by module path (`store/messages`; `` for lib.rs).
fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let joined = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if path.is_dir() {
            modules(&path, &joined, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module = match (prefix, name.as_str()) {
                ("", "lib") => String::new(),
                (_, "mod") => prefix.to_owned(),
                _ => joined,
            };
            out.insert(module, path);
        }
    }
}

/// The source without comments, string literals and unit tests.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            // A char literal holding a quote must not start a string.
            '\'' if chars.peek() == Some(&'"') => {
                chars.next();
                chars.next();
                out.push_str("' '");
            }
            c => out.push(c),
        }
    }
    out
}

/// The paths a `use` tree names: `a::{b, c::{d, e}}` gives a::b, a::c::d, a::c::e.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or("").trim();
        return vec![path.trim_end_matches("::self").to_owned()];
    };
    let prefix = tree[..open].trim_end_matches("::").trim();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| {
            expand(p).into_iter().map(|rest| match rest.as_str() {
                "self" => prefix.to_owned(),
                _ if prefix.is_empty() => rest,
                _ => format!("{prefix}::{rest}"),
            })
        })
        .collect()
}

/// Every `crate::`/`super::`/`self::` path in `code`, `use` trees expanded.
fn paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for stmt in code.split(';') {
        if let Some(at) = stmt.find("use ") {
            let before = &stmt[..at];
            let starts_stmt = before
                .chars()
                .last()
                .is_none_or(|c| c.is_whitespace() || c == '}' || c == '{');
            if starts_stmt {
                found.extend(expand(&stmt[at + 4..]));
                continue;
            }
        }
        let bytes = stmt.as_bytes();
        for (i, _) in stmt.match_indices("::") {
            // Walk back over the first segment of a path.
            let mut s = i;
            while s > 0 && (bytes[s - 1].is_ascii_alphanumeric() || bytes[s - 1] == b'_') {
                s -= 1;
            }
            let head = &stmt[s..i];
            let preceded = s >= 2 && &stmt[s - 2..s] == "::";
            if preceded || !matches!(head, "crate" | "super" | "self") {
                continue;
            }
            let mut e = i;
            while e < bytes.len()
                && (bytes[e].is_ascii_alphanumeric() || bytes[e] == b'_' || bytes[e] == b':')
            {
                e += 1;
            }
            found.push(stmt[s..e].trim_end_matches(':').to_owned());
        }
    }
    found
}

/// The module file a path resolves to from module `from`: the longest
/// prefix of it that is a module.
fn resolve(from: &str, path: &str, modules: &BTreeMap<String, PathBuf>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<&str> = if from.is_empty() {
        Vec::new()
    } else {
        from.split('/').collect()
    };
    match segs.first() {
        Some(&"crate") => {
            base.clear();
            segs.remove(0);
        }
        Some(&"super") => {
            while segs.first() == Some(&"super") {
                base.pop();
                segs.remove(0);
            }
        }
        Some(&"self") => {
            segs.remove(0);
        }
        _ => {}
    }
    let full: Vec<&str> = base.into_iter().chain(segs).collect();
    (1..=full.len())
        .rev()
        .map(|n| full[..n].join("/"))
        .find(|m| modules.contains_key(m))
}

/// Module -> the modules it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut mods = BTreeMap::new();
    modules(&src(), "", &mut mods);
    let mut edges = BTreeMap::new();
    for (module, file) in &mods {
        let code = code(&std::fs::read_to_string(file).unwrap());
        let mut deps = BTreeSet::new();
        for path in paths(&code) {
            if let Some(to) = resolve(module, &path, &mods)
                && to != *module
                && !to.is_empty()
            {
                deps.insert(to);
            }
        }
        // A module's own file may name its children without `self::`.
        for child in mods.keys() {
            let is_child = match child.rsplit_once('/') {
                Some((parent, _)) => parent == module,
                None => module.is_empty() && !child.is_empty(),
            };
            let name = child.rsplit('/').next().unwrap();
            if is_child && names(&code, name) {
                deps.insert(child.clone());
            }
        }
        edges.insert(module.clone(), deps);
    }
    edges
}

/// Whether `code` uses `name::` as the first segment of a path.
fn names(code: &str, name: &str) -> bool {
    let pattern = format!("{name}::");
    code.match_indices(&pattern).any(|(at, _)| {
        let before = code[..at].chars().last();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
    })
}

/// A cycle through `start`, if there is one.
fn cycle_from(start: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        at: &str,
        start: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in edges.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(next, start, edges, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(start, start, edges, &mut path, &mut BTreeSet::new()).then_some(path)
}

fn top(module: &str) -> &str {
    module.split('/').next().unwrap()
}

fn layer(module: &str) -> u8 {
    let name = top(module);
    LAYERS
        .iter()
        .find(|(m, _)| *m == name)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| panic!("module {name} has no layer in tests/it/architecture.rs"))
}

#[test]
fn the_reader_finds_imports_in_use_trees_and_paths() {
    let code = code(
        "use crate::{a::{b, c as d}, e::self};\n\
         use super::f::G;\n\
         fn x() { crate::h::i(); let s = \"crate::not::this\"; }\n\
         // crate::nor::this\n",
    );
    let found = paths(&code);
    assert_eq!(
        found,
        [
            "crate::a::b",
            "crate::a::c",
            "crate::e",
            "super::f::G",
            "crate::h::i"
        ],
        "{code}"
    );
}

#[test]
fn no_module_imports_itself_through_others() {
    let edges = graph();
    assert!(edges.contains_key("store/model") && edges["rest"].contains("rest/ctx"));
    let cycles: Vec<Vec<String>> = edges.keys().filter_map(|m| cycle_from(m, &edges)).collect();
    assert!(
        cycles.is_empty(),
        "import cycles (each a path back to its start): {cycles:#?}"
    );
}

#[test]
fn imports_point_down_the_layers() {
    let edges = graph();
    let mut up = Vec::new();
    for (from, deps) in &edges {
        if from.is_empty() {
            continue;
        }
        for to in deps {
            if top(from) != top(to) && layer(to) < layer(from) {
                up.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(up.is_empty(), "imports that point up the layers: {up:#?}");
}

#[test]
fn leaves_import_nothing_of_the_crate() {
    let edges = graph();
    let mut found = Vec::new();
    for (from, deps) in &edges {
        if !LEAVES.contains(&top(from)) {
            continue;
        }
        for to in deps {
            if top(to) != top(from) && to != "log" {
                found.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(found.is_empty(), "leaves that import the crate: {found:#?}");
}
