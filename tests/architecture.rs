//! The module structure stays as designed, read from the source's paths: arrows point inward (the
//! domain, XML, CAF, certificate, error and SII layers never reach the service, the store, HTTP or
//! the workers), and no two modules import each other, directly or round a loop — neither between
//! the top-level modules of `src/` nor between the files of one folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Modules below the application layer, and what they must never use.
const LOWER: &[&str] = &[
    "error",
    "crypto",
    "netguard",
    "otel",
    "domain",
    "cert",
    "xml",
    "caf",
    "ted",
    "folio",
    "verify",
    "engine",
    "sii",
    "telemetry",
    "exchange",
];
const HIGHER: &[&str] = &["service", "store", "http", "batch", "worker", "server", "config", "queue"];

type Graph = BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs").to_string();
        if stem != "mod" {
            parts.push(stem);
        }
    }
    parts
}

/// The source a module's own code is made of: unit tests (the trailing `#[cfg(test)]` module by
/// this project's convention) and comments do not count.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every path segment list that follows `prefix` in `text` (`crate::a::b::C` → `[a, b, C]`).
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(prefix) {
        let before = text[..i].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + prefix.len()..];
        let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        out.push(path.split("::").filter(|s| !s.is_empty()).map(String::from).collect());
    }
    out
}

fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let modules: BTreeMap<Vec<String>, String> = all
        .iter()
        .filter(|p| !p.ends_with("main.rs") && !p.ends_with("lib.rs"))
        .map(|p| {
            (module_path(p.strip_prefix(&src).expect("under src")), code(&std::fs::read_to_string(p).expect("read")))
        })
        .collect();
    // The longest known module that `path` names.
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains_key(p))
    };
    let mut g = Graph::new();
    for (m, text) in &modules {
        let mut deps = BTreeSet::new();
        for p in paths_after(text, "crate::") {
            deps.extend(resolve(&p));
        }
        // `super::` from a file module means its parent's module.
        let parent = &m[..m.len().saturating_sub(1)];
        for p in paths_after(text, "super::") {
            let mut full = parent.to_vec();
            full.extend(p.into_iter().filter(|s| s != "super"));
            deps.extend(resolve(&full));
        }
        deps.remove(m);
        g.insert(m.clone(), deps);
    }
    g
}

/// A loop in `edges`, if any, as the list of nodes round it.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for next in edges.get(n).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| s == next).unwrap_or(0);
                    return Some(stack[from..].to_vec());
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(next, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if !state.contains_key(n) {
            if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let mut wrong = Vec::new();
    for (m, deps) in graph() {
        if !LOWER.contains(&m[0].as_str()) {
            continue;
        }
        for d in deps {
            if HIGHER.contains(&d[0].as_str()) {
                wrong.push(format!("{} uses {}", m.join("::"), d.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "lower layers reaching up:\n{}", wrong.join("\n"));
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, deps) in graph() {
        let e = top.entry(m[0].clone()).or_default();
        e.extend(deps.into_iter().map(|d| d[0].clone()).filter(|d| *d != m[0]));
    }
    assert_eq!(cycle(&top), None, "modules of src/ importing each other");
}

#[test]
fn no_import_cycle_between_the_files_of_a_folder() {
    let g = graph();
    let parents: BTreeSet<Vec<String>> = g.keys().filter(|m| m.len() > 1).map(|m| m[..m.len() - 1].to_vec()).collect();
    for parent in parents {
        let child = |m: &Vec<String>| -> Option<String> {
            (m.len() > parent.len() && m[..parent.len()] == parent[..]).then(|| m[parent.len()].clone())
        };
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (m, deps) in &g {
            let Some(from) = child(m) else { continue };
            let e = edges.entry(from.clone()).or_default();
            e.extend(deps.iter().filter_map(child).filter(|to| *to != from));
        }
        assert_eq!(cycle(&edges), None, "files of src/{} importing each other", parent.join("/"));
    }
}

#[test]
fn the_checker_sees_a_known_cycle() {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(cycle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(cycle(&edges), Some(vec!["a".into(), "b".into(), "c".into()]));
    let p = paths_after("use crate::sii::client::{X, Y}; let z = super::soap::f();", "crate::");
    assert_eq!(p, vec![vec!["sii".to_string(), "client".into()]]);
}

/// HTTP handlers, the workers, the server's wiring and the command line reach the database only
/// through the service: no `….store` access in them. (The batch area's own service, `Batches` in
/// `src/batch/`, is the one door to the batch tables, as the service is to the rest.)
#[test]
fn edges_go_through_the_service() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src.join("http"), &mut all);
    files(&src.join("worker"), &mut all);
    all.extend(
        [
            "server.rs",
            "cli.rs",
            "cli_batch.rs",
            "cli_pdf.rs",
            "cli_doctor.rs",
            "cli_caf.rs",
            "cli_received.rs",
            "cli_directory.rs",
            "main.rs",
        ]
        .iter()
        .map(|f| src.join(f)),
    );
    let mut wrong = Vec::new();
    for f in all {
        let text = code(&std::fs::read_to_string(&f).expect("read"));
        for (n, line) in text.lines().enumerate() {
            if line.contains(".store.") || line.contains(".store,") || line.trim_end().ends_with(".store") {
                wrong.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(wrong.is_empty(), "edges reaching into the store:\n{}", wrong.join("\n"));
}
