//! The layering, checked on the source: no import cycle among the modules
//! of the library's `src/`, nor among the hub's (`hub/src/`), and only the
//! library's I/O shell names a socket.
//!
//! These rules are what lets a newcomer change one module without reading
//! them all; a review can miss a new `use crate::…` that closes a cycle, this
//! test does not.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// The modules that may touch a socket, a TLS session or the poller: the
/// loop itself, the transport under each connection (plain or TLS), and
/// the listener setup.
const IO_SHELL: &[&str] = &["server", "transport", "listen"];

/// Words that only code doing network I/O needs: sockets, and registering
/// them with the poller. (A `SocketAddr` is a value, and `handle.rs`'s
/// `mio::Waker` wakes the loop from another thread; neither is a socket.)
const SOCKET_WORDS: &[&str] = &[
    "TcpStream",
    "TcpListener",
    "mio::net",
    "Registry",
    "Interest",
    ".shutdown(",
    "rustls",
    "ServerConnection",
];

/// Each module of `src/` (but `lib`) with its text, comments left out.
fn modules() -> BTreeMap<String, String> {
    modules_in("src")
}

/// Each module of the crate whose sources are in `dir` (but `lib` and
/// `main`), with its text, comments left out.
fn modules_in(dir: &str) -> BTreeMap<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut modules = BTreeMap::new();
    for entry in fs::read_dir(&dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main" {
            let text = fs::read_to_string(&path).expect("a module is readable");
            modules.insert(name.to_owned(), without_comments(&text));
        }
    }
    modules
}

/// The text with `//` comments (docs included) removed, so that a module's
/// doc may speak of sockets and other modules without counting as using them.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal (a URL) is rare in this code and
            // only removes text, which can hide an edge but never invent one.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules that `text` names through `crate::`, in both `crate::a::B`
/// and `crate::{a::B, b}` forms; `aliases` maps what the crate's root
/// re-exports (`crate::Config`) to the module it comes from.
fn crate_imports(text: &str, known: &BTreeSet<&str>, aliases: &[(&str, &str)]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            group[..end].split(',').collect()
        } else {
            vec![rest]
        };
        for name in names {
            let name = name.trim();
            let end = name
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(name.len());
            let name = aliases
                .iter()
                .find(|(alias, _)| *alias == &name[..end])
                .map_or(&name[..end], |(_, module)| module);
            if known.contains(name) {
                found.insert(name.to_owned());
            }
        }
    }
    found
}

/// A cycle in `edges`, as the path that closes it, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in &edges[module] {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|m| visit(m, edges, &mut Vec::new(), &mut done))
}

fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    graph_of(&modules(), &[])
}

/// What the hub's root re-exports, and from where.
const HUB_ALIASES: &[(&str, &str)] = &[("Config", "config"), ("Hub", "hub")];

fn graph_of(
    modules: &BTreeMap<String, String>,
    aliases: &[(&str, &str)],
) -> BTreeMap<String, BTreeSet<String>> {
    let known: BTreeSet<&str> = modules.keys().map(String::as_str).collect();
    modules
        .iter()
        .map(|(name, text)| {
            let mut imports = crate_imports(text, &known, aliases);
            imports.remove(name);
            (name.clone(), imports)
        })
        .collect()
}

#[test]
fn no_module_of_src_imports_one_that_imports_it_back() {
    let graph = import_graph();
    assert!(graph.len() > 10, "found only {:?}", graph.keys());
    assert!(
        graph["core"].contains("conn"),
        "the import scan no longer sees `use crate::conn` in core.rs"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn no_module_of_the_hub_imports_one_that_imports_it_back() {
    let graph = graph_of(&modules_in("hub/src"), HUB_ALIASES);
    assert!(graph.len() > 15, "found only {:?}", graph.keys());
    assert!(
        graph["routes"].contains("hub") && graph["auth"].contains("topics"),
        "the import scan no longer sees the hub's imports"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle in hub/src: {}", cycle.join(" -> "));
    }
}

#[test]
fn a_re_export_counts_as_its_module() {
    let known: BTreeSet<&str> = ["config", "auth"].into_iter().collect();
    let found = crate_imports("fn f(c: &crate::Config) {}", &known, HUB_ALIASES);
    assert!(found.contains("config"), "{found:?}");
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut graph = import_graph();
    graph.get_mut("conn").unwrap().insert("core".to_owned());
    let cycle = find_cycle(&graph).expect("conn -> core -> conn is a cycle");
    assert_eq!(cycle.first(), cycle.last());
}

#[test]
fn only_the_io_shell_names_a_socket() {
    let mut offenders = Vec::new();
    for (name, text) in modules() {
        if IO_SHELL.contains(&name.as_str()) {
            continue;
        }
        for word in SOCKET_WORDS {
            if text.contains(word) {
                offenders.push(format!("{name}.rs names {word}"));
            }
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
    assert!(
        modules()["server"].contains("TcpStream"),
        "the scan no longer sees the shell's own sockets"
    );
    assert!(
        modules()["transport"].contains("ServerConnection"),
        "the scan no longer sees the shell's TLS sessions"
    );
}
