//! The shape every service keeps, checked on the sources: no import loop between the modules
//! of a service, SQL only where persistence lives, and no source file over 500 lines of
//! code (tests aside).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

const SERVICES: &[&str] = &["sources-api", "listener", "ingestion", "broker", "keel"];
const LIBS: &[&str] = &[
    "keel-crypto",
    "keel-db",
    "keel-domain",
    "keel-events",
    "keel-service",
    "keel-sources-http",
    "keel-telemetry",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`, with its module path (`store::sources`; `""` for lib.rs).
fn modules(src: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, src: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, src, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                out.insert(parts.join("::"), std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, src, &mut out);
    out
}

/// The code of a file without its `#[cfg(test)]` tail and without comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `use` trees flattened into paths: `use crate::{a::b, c};` gives `crate::a::b`, `crate::c`.
fn use_paths(code: &str) -> Vec<String> {
    fn flatten(prefix: &str, tree: &str, out: &mut Vec<String>) {
        let tree = tree.trim();
        if let Some(open) = tree.find('{') {
            let head = tree[..open].trim().trim_end_matches("::");
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let base = join(prefix, head);
            let (mut depth, mut start) = (0, 0);
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        flatten(&base, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            flatten(&base, &inner[start..], out);
        } else if !tree.is_empty() {
            let path = tree.split(" as ").next().unwrap_or(tree).trim();
            out.push(join(prefix, path));
        }
    }
    fn join(a: &str, b: &str) -> String {
        match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_owned(),
            (_, true) => a.to_owned(),
            _ => format!("{a}::{b}"),
        }
    }
    let mut out = Vec::new();
    for statement in code.split(';') {
        let statement = statement.trim();
        let Some(tree) = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("use "))
            .or_else(|| statement.rsplit_once("\nuse ").map(|(_, t)| t))
            .or_else(|| statement.rsplit_once("\npub use ").map(|(_, t)| t))
        else {
            continue;
        };
        flatten("", tree, &mut out);
    }
    out
}

/// Paths written in the code itself: `crate::a::b`, `super::c`.
fn inline_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        for (i, _) in code.match_indices(start) {
            let before = code[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let path: String = code[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path.trim_end_matches(':').to_owned());
        }
    }
    out
}

/// The module a path names from inside `here`: the longest known module prefix.
fn target(path: &str, here: &str, known: &BTreeSet<String>) -> Option<String> {
    let mut segments: Vec<&str> = Vec::new();
    let mut rest = path.split("::").peekable();
    match rest.peek().copied() {
        Some("crate") => {
            rest.next();
        }
        Some("super") => {
            segments = here.split("::").filter(|s| !s.is_empty()).collect();
            while rest.peek() == Some(&"super") {
                rest.next();
                segments.pop();
            }
        }
        _ => return None,
    }
    segments.extend(rest);
    (0..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|m| known.contains(m))
}

/// Edges between modules, leaving out a module's uses of its ancestors and descendants
/// (a `mod.rs` and what it declares), which are containment rather than dependency.
fn edges(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let within = |a: &str, b: &str| b.is_empty() || a.starts_with(&format!("{b}::"));
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (here, text) in mods {
        let code = code(text);
        for path in use_paths(&code).into_iter().chain(inline_paths(&code)) {
            if let Some(to) = target(&path, here, &known)
                && to != *here
                && !within(here, &to)
                && !within(&to, here)
            {
                graph.entry(here.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn crates() -> Vec<(String, PathBuf)> {
    let root = workspace();
    SERVICES
        .iter()
        .map(|s| (s.to_string(), root.join("services").join(s).join("src")))
        .chain(
            LIBS.iter()
                .map(|l| (l.to_string(), root.join("libs").join(l).join("src"))),
        )
        .collect()
}

#[test]
fn no_module_of_a_crate_imports_its_way_back_to_itself() {
    for (name, src) in crates() {
        let graph = edges(&modules(&src));
        if let Some(cycle) = find_cycle(&graph) {
            panic!("{name}: import loop {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_a_loop_and_containment_is_not_one() {
    let mods: BTreeMap<String, String> = [
        ("".to_owned(), "mod a; mod b;".to_owned()),
        ("a".to_owned(), "use crate::b::thing;".to_owned()),
        ("b".to_owned(), "fn f() { crate::a::g() }".to_owned()),
        ("c".to_owned(), "use super::{x, d::y};".to_owned()),
        ("c::d".to_owned(), "use super::Shared;".to_owned()),
    ]
    .into_iter()
    .collect();
    let graph = edges(&mods);
    let cycle = find_cycle(&graph).expect("a and b use each other");
    assert!(cycle.contains(&"a".to_owned()) && cycle.contains(&"b".to_owned()));
    assert!(
        !graph.contains_key("c::d"),
        "a child using its parent is containment"
    );
    assert!(
        !graph.contains_key("c"),
        "a parent using its child is containment"
    );
}

#[test]
fn sql_lives_only_where_persistence_does() {
    // (crate, module prefixes allowed to hold SQL)
    let allowed: &[(&str, &[&str])] = &[
        ("sources-api", &["store", "seed"]),
        ("listener", &["store"]),
        ("ingestion", &["store"]),
        // The broker's drivers speak SQL to the servers they provision on.
        ("broker", &["store", "drivers"]),
    ];
    for (name, places) in allowed {
        let src = workspace().join("services").join(name).join("src");
        for (module, text) in modules(&src) {
            let in_place = places
                .iter()
                .any(|p| module == *p || module.starts_with(&format!("{p}::")));
            if !in_place {
                let code = code(&text);
                assert!(
                    !code.contains("sqlx::query") && !code.contains("sqlx::raw_sql"),
                    "{name}: module `{module}` runs SQL; it belongs in {places:?}"
                );
            }
        }
    }
}

#[test]
fn no_source_file_is_over_500_lines_of_code() {
    for (name, src) in crates() {
        for (module, text) in modules(&src) {
            let lines = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .lines()
                .count();
            assert!(
                lines <= 500,
                "{name}: `{module}` has {lines} lines before its tests"
            );
        }
    }
}
