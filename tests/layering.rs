//! No module imports one that imports it back. Reads the `use` lines and
//! paths of every file under src/ (tests modules and comments left out),
//! resolves `crate::`, `super::` and parent-to-child paths to modules, and
//! fails with each cycle found.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

fn module_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            module_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> Option<Module> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [only] if only == "lib" || only == "main" => None,
        _ => Some(parts),
    }
}

/// The code that ships: no comment lines, no `mod tests`.
fn product_code(text: &str) -> String {
    let text = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path written in `code` (`a::b::c`), with one level of braces
/// expanded (`a::{b, c::d}` gives `a::b` and `a::c::d`).
fn paths(code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !ident(chars[i]) || (i > 0 && (ident(chars[i - 1]) || chars[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let mut segments = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while j < chars.len() && ident(chars[j]) {
                j += 1;
            }
            segments.push(chars[start..j].iter().collect::<String>());
            if chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
                j += 2;
                if chars.get(j) == Some(&'{') {
                    let end = chars[j..]
                        .iter()
                        .position(|&c| c == '}')
                        .map_or(chars.len(), |p| j + p);
                    let inner: String = chars[j + 1..end].iter().collect();
                    for item in inner.split(',') {
                        let item: Vec<String> = item
                            .trim()
                            .split("::")
                            .map(|s| s.trim().chars().take_while(|&c| ident(c)).collect())
                            .filter(|s: &String| !s.is_empty())
                            .collect();
                        let mut full = segments.clone();
                        full.extend(item);
                        out.push(full);
                    }
                    j = end;
                    break;
                }
                if chars.get(j).is_some_and(|&c| ident(c)) {
                    continue;
                }
            }
            if segments.len() > 1 {
                out.push(segments.clone());
            }
            break;
        }
        i = j.max(i + 1);
    }
    out
}

/// The longest known module that `path` (from inside `me`) names.
fn resolve(me: &Module, path: &[String], modules: &BTreeSet<Module>) -> Option<Module> {
    let absolute: Module = match path.first().map(String::as_str) {
        Some("crate") => path[1..].to_vec(),
        Some("super") => {
            let ups = path.iter().take_while(|s| *s == "super").count();
            let mut base: Module = me[..me.len().saturating_sub(ups)].to_vec();
            base.extend_from_slice(&path[ups..]);
            base
        }
        Some("self") => me.iter().chain(&path[1..]).cloned().collect(),
        // A child module named directly from its parent.
        Some(first) => {
            let mut child = me.clone();
            child.push(first.to_string());
            if !modules.contains(&child) {
                return None;
            }
            me.iter().chain(path).cloned().collect()
        }
        None => return None,
    };
    (1..=absolute.len())
        .rev()
        .map(|n| absolute[..n].to_vec())
        .find(|m| modules.contains(m))
}

fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    // Every pair where each reaches the other; reported once per pair.
    let reach = |from: &Module| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for n in edges.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let mut found = Vec::new();
    for a in edges.keys() {
        for b in edges.get(a).into_iter().flatten() {
            if a < b && reach(b).contains(a) {
                found.push(vec![a.clone(), b.clone()]);
            }
        }
    }
    found
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    module_files(&src, &mut files);
    let by_module: BTreeMap<Module, PathBuf> = files
        .iter()
        .filter_map(|f| module_of(&src, f).map(|m| (m, f.clone())))
        .collect();
    let modules: BTreeSet<Module> = by_module.keys().cloned().collect();
    assert!(modules.len() > 50, "found the modules: {}", modules.len());
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (me, file) in &by_module {
        let code = product_code(&std::fs::read_to_string(file).expect("readable"));
        for path in paths(&code) {
            if let Some(target) = resolve(me, &path, &modules)
                && &target != me
            {
                edges.entry(me.clone()).or_default().insert(target);
            }
        }
    }
    let found = cycles(&edges);
    let shown: Vec<String> = found
        .iter()
        .map(|pair| {
            pair.iter()
                .map(|m| m.join("::"))
                .collect::<Vec<_>>()
                .join(" <-> ")
        })
        .collect();
    assert!(shown.is_empty(), "import cycles: {shown:#?}");
}

#[test]
fn the_reader_sees_cycles_and_braces() {
    let got = paths("use super::{context::Context, job_id};\nlet x = crate::http::read_body(b);");
    assert!(
        got.contains(&vec!["super".into(), "context".into(), "Context".into()]),
        "{got:?}"
    );
    assert!(
        got.contains(&vec!["super".into(), "job_id".into()]),
        "{got:?}"
    );
    assert!(
        got.contains(&vec!["crate".into(), "http".into(), "read_body".into()]),
        "{got:?}"
    );
    let m = |s: &str| s.split("::").map(String::from).collect::<Module>();
    let mut edges = BTreeMap::new();
    edges.insert(m("a"), BTreeSet::from([m("b")]));
    edges.insert(m("b"), BTreeSet::from([m("c")]));
    edges.insert(m("c"), BTreeSet::from([m("a")]));
    assert_eq!(
        cycles(&edges).len(),
        2,
        "a->b->c->a shows as its edges a->b and b->c"
    );
}
