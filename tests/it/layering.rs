//! One direction of imports: every module of `src/` imports only from the
//! layers below its own (and, within a layer, from the modules listed
//! before it). The order is written here once; `src/lib.rs`'s module map
//! lists the modules in the same order, and this test checks that too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Layers from the bottom up, each with its modules in their allowed order.
const LAYERS: &[(&str, &[&str])] = &[
    ("leaves", &["error", "util", "events", "metrics"]),
    ("configuration", &["config"]),
    ("domain", &["codec", "features", "model", "generator", "state"]),
    ("connectors", &["kafka", "sources", "sinks", "lake"]),
    ("operators", &["operators"]),
    ("jobs", &["jobs"]),
    ("runtime", &["runtime"]),
    ("commands", &["produce", "demo", "cli"]),
];

/// A module's place: (layer, position in the layer).
fn rank(module: &str) -> Option<(usize, usize)> {
    LAYERS
        .iter()
        .enumerate()
        .find_map(|(layer, (_, modules))| modules.iter().position(|m| *m == module).map(|at| (layer, at)))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for the crate
/// root files `lib.rs` and `main.rs`).
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy().to_string();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        _ => Some(first.trim_end_matches(".rs").to_string()),
    }
}

/// The code of a file without comments (doc links to other modules are not imports).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module named by a `crate::` path in `code`: in `use`
/// declarations (including groups, `use crate::{a::X, b::Y}`) and inline paths.
fn imported_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `riftstream_crate::`, not a path of ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c}`: the first segment of each item, at depth 0.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        found.insert(name);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn modules_import_only_from_layers_below_their_own() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut modules_seen = BTreeSet::new();
    for file in &files {
        let Some(module) = module_of(file) else { continue };
        modules_seen.insert(module.clone());
        let Some(own) = rank(&module) else {
            violations.push(format!(
                "{}: module `{module}` has no layer; add it to LAYERS in tests/it/layering.rs and to the map in src/lib.rs",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for imported in imported_modules(&code_of(&text)) {
            if imported == module {
                continue;
            }
            match rank(&imported) {
                Some(theirs) if theirs < own => {}
                Some(_) => violations.push(format!(
                    "{}: `{module}` ({}) imports `crate::{imported}` ({}), which is not below it",
                    file.strip_prefix(src().parent().unwrap_or(Path::new(".")))
                        .unwrap_or(file)
                        .display(),
                    LAYERS[own.0].0,
                    LAYERS[rank(&imported).map_or(0, |r| r.0)].0,
                )),
                None => violations.push(format!(
                    "{}: imports `crate::{imported}`, which has no layer",
                    file.display()
                )),
            }
        }
    }
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
    let listed: BTreeSet<String> = LAYERS
        .iter()
        .flat_map(|(_, m)| m.iter().map(|s| s.to_string()))
        .collect();
    assert_eq!(modules_seen, listed, "LAYERS lists exactly the modules of src/");
}

#[test]
fn the_module_map_in_lib_rs_lists_the_layers_in_order() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("read lib.rs");
    // Rows of the map: `//! | [`module`] | layer | role |`.
    let mapped: Vec<(String, String)> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//! | [`"))
        .filter_map(|l| {
            let (module, rest) = l.split_once("`]")?;
            let layer = rest.trim_start_matches([' ', '|']).split('|').next()?.trim();
            Some((module.to_string(), layer.to_string()))
        })
        .collect();
    let expected: Vec<(String, String)> = LAYERS
        .iter()
        .flat_map(|(layer, modules)| modules.iter().map(move |m| (m.to_string(), layer.to_string())))
        .collect();
    assert_eq!(mapped, expected, "src/lib.rs's module map, bottom to top");
}

#[test]
fn the_import_scanner_finds_grouped_and_inline_paths() {
    let code = "use crate::a::X;\nuse crate::{b::Y, c};\nfn f() { crate::d::g(); my_crate::e::h(); }";
    let found: Vec<String> = imported_modules(code).into_iter().collect();
    assert_eq!(found, ["a", "b", "c", "d"]);
    assert_eq!(code_of("let x = 1; // crate::z::w"), "let x = 1; ");
}
