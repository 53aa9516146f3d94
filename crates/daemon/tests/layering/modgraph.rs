//! The module graph of a binary crate: one node per module down to
//! `top::sub` (deeper modules count as their `top::sub` ancestor), one edge
//! per `crate::…`, `super::…`, `self::…` or `child::…` path in shipped code.
//! A module using its own ancestor (`super::helper`) leaves no edge: that is
//! how Rust shares a module's helpers with its children. A parent using its
//! child does, so `a → a::b → c → a` is a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::source::code_only;

/// Module path (`""` for the crate root) → the modules it uses.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// Deepest module path kept as a node.
const DEPTH: usize = 2;

/// The module path of a file under `src/` (`main.rs`, `lib.rs` → root).
pub fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "main" | "lib")
    ) {
        parts.pop();
    }
    parts
}

/// Reads every `.rs` file under `src` into (module path, code) pairs.
pub fn read_crate(src: &Path) -> std::io::Result<Vec<(Vec<String>, String)>> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).expect("under src");
                files.push((module_of(rel), std::fs::read_to_string(&path)?));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The graph of a crate given as (module path, source) pairs.
pub fn build(files: &[(Vec<String>, String)]) -> Graph {
    let known: BTreeSet<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graph = Graph::new();
    for (module, src) in files {
        let from = node(module);
        let targets = graph.entry(from.join("::")).or_default();
        let children: BTreeSet<String> = known
            .iter()
            .filter(|k| k.len() == module.len() + 1 && k.starts_with(module))
            .filter_map(|k| k.last().cloned())
            .collect();
        for path in paths_in(&code_only(src), module, &children) {
            let to = node(&longest_module(&path, &known));
            if !from.starts_with(&to) {
                targets.insert(to.join("::"));
            }
        }
    }
    graph
}

fn node(module: &[String]) -> Vec<String> {
    module.iter().take(DEPTH).cloned().collect()
}

/// The longest prefix of `path` that names a known module.
fn longest_module(path: &[String], known: &BTreeSet<Vec<String>>) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains(p))
        .unwrap_or_default()
}

/// Every absolute path (from the crate root) named by a `crate::`,
/// `super::`, `self::` or `child::` path in `code` (a file of `module`, whose
/// child modules are `children`), expanding `use` groups (`a::{b, c::d}`).
pub fn paths_in(code: &str, module: &[String], children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let word_start = i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != '$';
        let base = if !word_start {
            None
        } else if starts_with(&chars, i, "crate::") {
            i += "crate::".len();
            Some(Vec::new())
        } else if starts_with(&chars, i, "super::") {
            let mut base = module.to_vec();
            while starts_with(&chars, i, "super::") {
                base.pop();
                i += "super::".len();
            }
            Some(base)
        } else if starts_with(&chars, i, "self::") {
            i += "self::".len();
            Some(module.to_vec())
        } else {
            let end = (i..chars.len())
                .find(|&k| !is_ident(chars[k]))
                .unwrap_or(chars.len());
            let word: String = chars[i..end].iter().collect();
            let child_path = children.contains(&word)
                && starts_with(&chars, end, "::")
                && (i < 2 || !starts_with(&chars, i - 2, "::"));
            child_path.then(|| module.to_vec())
        };
        match base {
            Some(base) => tree(&chars, &mut i, base, &mut found),
            None => i += 1,
        }
    }
    found
}

/// Parses a use tree at `*i` (`a::b`, `a::{…}`, `*`) under `prefix`.
fn tree(c: &[char], i: &mut usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    loop {
        skip_space(c, i);
        if c.get(*i) == Some(&'{') {
            *i += 1;
            loop {
                skip_space(c, i);
                match c.get(*i) {
                    Some('}') | None => {
                        *i += 1;
                        return;
                    }
                    Some(',') => *i += 1,
                    _ => {
                        let before = *i;
                        tree(c, i, prefix.clone(), out);
                        if *i == before {
                            *i += 1;
                        }
                    }
                }
            }
        }
        let start = *i;
        while c.get(*i).is_some_and(|&ch| is_ident(ch)) {
            *i += 1;
        }
        if *i == start {
            // `*`, or the end of the path.
            out.push(prefix);
            return;
        }
        let word: String = c[start..*i].iter().collect();
        if word != "self" {
            prefix.push(word);
        }
        if starts_with(c, *i, "::") {
            *i += 2;
        } else {
            out.push(prefix);
            return;
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn starts_with(c: &[char], i: usize, s: &str) -> bool {
    s.chars()
        .enumerate()
        .all(|(k, ch)| c.get(i + k) == Some(&ch))
}

fn skip_space(c: &[char], i: &mut usize) {
    while c.get(*i).is_some_and(|ch| ch.is_whitespace()) {
        *i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(path: &str) -> Vec<String> {
        path.split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn files_map_to_modules() {
        assert_eq!(module_of(Path::new("main.rs")), m(""));
        assert_eq!(module_of(Path::new("save.rs")), m("save"));
        assert_eq!(module_of(Path::new("routes/mod.rs")), m("routes"));
        assert_eq!(module_of(Path::new("routes/host.rs")), m("routes::host"));
    }

    #[test]
    fn paths_expand_groups_super_and_self() {
        let code = "use crate::{daemon::Daemon, snapshots::{self, external::take}};\n\
                    fn f() { super::super::x::y(); crate::save::run(); }\n\
                    use crate::lifecycle::*;";
        let got = paths_in(code, &m("routes::host::inner"), &BTreeSet::new());
        let want = [
            m("daemon::Daemon"),
            m("snapshots"),
            m("snapshots::external::take"),
            m("routes::x::y"),
            m("save::run"),
            m("lifecycle"),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn pub_crate_and_dollar_crate_are_not_paths() {
        let code = "pub(crate) fn f() {} macro_rules! m { () => { $crate::x::y() } }";
        assert!(paths_in(code, &[], &BTreeSet::new()).is_empty());
    }

    #[test]
    fn edges_stop_at_known_modules_and_skip_uses_of_ancestors() {
        let files = vec![
            (
                m(""),
                "mod a; mod b; fn main() { crate::a::go() }".to_owned(),
            ),
            (
                m("a"),
                "use crate::b::deep::Thing; use self::child::x;".to_owned(),
            ),
            (
                m("a::child"),
                "use super::Parent; use crate::b::Item;".to_owned(),
            ),
            (m("b"), "pub fn item() {}".to_owned()),
            (
                m("c"),
                "mod kid; fn f() { kid::go(); other::kid::x(); }".to_owned(),
            ),
            (m("c::kid"), "use super::helper;".to_owned()),
            (m("b::deep"), "pub struct Thing;".to_owned()),
            (m("b::deep::deeper"), "use crate::a::go;".to_owned()),
        ];
        let g = build(&files);
        let set = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(g[""], set(&["a"]), "a parent using its child is an edge");
        assert_eq!(g["a"], set(&["a::child", "b::deep"]));
        assert_eq!(
            g["c"],
            set(&["c::kid"]),
            "a bare child path, not other::kid"
        );
        assert_eq!(g["c::kid"], set(&[]), "a child using its parent is not");
        assert_eq!(g["a::child"], set(&["b"]));
        assert_eq!(
            g["b::deep"],
            set(&["a"]),
            "deeper modules fold into b::deep"
        );
    }
}
