//! The shape of the code, checked so that it cannot drift: top-level modules use each other
//! without circles, no source file grows past ~600 lines without saying why it must be one
//! piece, and ARCHITECTURE.md's code map names every file. No loop runs here (no watchdog).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    files.sort();
    files
}

/// The top-level module a file of `src/` belongs to (`src/event_loop/run.rs` → `event_loop`).
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(root().join("src")).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The code of a file that counts for dependencies: no comments, and nothing from the first
/// `#[cfg(test)]` on (test modules sit at the end of a file and may use anything).
fn code_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
}

/// Which module each name re-exported at the crate root comes from (`pub use x::{A, B}`).
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut stmt = String::new();
    for line in code_lines(lib) {
        let t = line.trim();
        if t.starts_with("pub use ") || !stmt.is_empty() {
            stmt.push_str(t);
            stmt.push(' ');
            if !t.ends_with(';') {
                continue;
            }
            let body = stmt
                .trim()
                .trim_start_matches("pub use ")
                .trim_end_matches(';');
            let (module, names) = body.split_once("::").unwrap();
            for name in names
                .trim_matches(|c| c == '{' || c == '}' || c == ' ')
                .split(',')
            {
                let name = name.trim();
                if !name.is_empty() {
                    map.insert(name.to_string(), module.to_string());
                }
            }
            stmt.clear();
        }
    }
    map
}

/// The top-level modules that `text` names through `crate::`.
fn uses(
    text: &str,
    modules: &BTreeSet<String>,
    reexports: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut found = Vec::new();
    for line in code_lines(text) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let mut names: Vec<&str> = Vec::new();
            let ident = |s: &str| -> String {
                s.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            };
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a, b::C};`
                let end = group.find('}').unwrap_or(group.len());
                names.extend(group[..end].split(',').map(str::trim));
            } else {
                names.push(rest);
            }
            for n in names {
                let id = ident(n);
                if modules.contains(&id) {
                    found.push(id);
                } else if let Some(m) = reexports.get(&id) {
                    found.push(m.clone());
                }
            }
        }
    }
    found
}

#[test]
fn top_level_modules_use_each_other_without_circles() {
    let files = src_files();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(f))
        .filter(|m| m != "lib")
        .collect();
    let lib = fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let reexports = reexports(&lib);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let m = module_of(f);
        if m == "lib" {
            continue;
        }
        let text = fs::read_to_string(f).unwrap();
        let deps = graph.entry(m.clone()).or_default();
        for d in uses(&text, &modules, &reexports) {
            if d != m {
                deps.insert(d);
            }
        }
    }
    // The edges the layout is built on must be seen, or the parser above is blind.
    assert!(graph["event_loop"].contains("task"), "{graph:?}");
    assert!(graph["time"].contains("event_loop"), "{graph:?}");
    assert!(graph["task"].contains("shared"), "{graph:?}");

    // Depth-first search for a back edge; report the circle it closes.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut circle = path[i..].to_vec();
            circle.push(m.to_string());
            return Some(circle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(circle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("modules use each other in a circle: {}", circle.join(" → "));
        }
    }
}

#[test]
fn the_cycle_check_sees_a_circle() {
    // The parser and the search, on a made-up pair of modules that use each other.
    let modules: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    let re = reexports("pub use b::{Thing, Other};\n");
    assert_eq!(uses("use crate::{a::X, Thing};", &modules, &re), ["a", "b"]);
    assert_eq!(
        uses("// crate::a in a comment\nlet x = 1;", &modules, &re),
        Vec::<String>::new()
    );
    assert_eq!(
        uses(
            "fn f() {}\n#[cfg(test)]\nmod tests { use crate::a; }",
            &modules,
            &re
        ),
        Vec::<String>::new()
    );
}

#[test]
fn long_files_say_why_they_are_one_piece() {
    for f in src_files() {
        let text = fs::read_to_string(&f).unwrap();
        let lines = text.lines().count();
        if lines > 650 {
            let head: String = text.lines().take(60).collect::<Vec<_>>().join("\n");
            assert!(
                head.contains("# Why one file"),
                "{} has {lines} lines: split it, or say at its top why it must be one piece \
                 (a `# Why one file` section in the module doc)",
                f.display()
            );
        }
    }
}

#[test]
fn the_code_map_names_every_source_and_test_file() {
    let arch = fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let map = arch
        .split("## Code map")
        .nth(1)
        .expect("ARCHITECTURE.md has a code map")
        .split("\n## ")
        .next()
        .unwrap();
    let mut files = src_files();
    rust_files(&root().join("tests"), &mut files);
    let mut missing = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .to_string();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        // A folder's files may be named in its row (`src/debug/`: `report.rs`, ...).
        if !map.contains(&rel) && !map.contains(&format!("`{name}`")) {
            missing.push(rel);
        }
    }
    assert!(
        missing.is_empty(),
        "the code map does not name: {missing:?}"
    );
}
