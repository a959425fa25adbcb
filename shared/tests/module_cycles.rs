//! The crate's files import each other in layers, never in a loop: a module that imports a
//! module that (through others) imports it back cannot be understood or changed alone.
//!
//! Every `crate::a::b::Name` a file names (in `use` lines, `use crate::a::{b, c::D}` groups,
//! or inline), every `super::a::B`, and every `crate::Name` the crate root re-exports, is
//! an arrow to the file of the longest module prefix of that path. A module's own
//! ancestors do not count (a child may use its parent's items), nor do comments and
//! `#[cfg(test)]` modules and files (test-only imports are no design arrows). The test
//! fails naming each loop and the names that tie it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

#[test]
fn the_crate_has_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = modules_under(&src);
    assert!(files.len() > 10, "found the crate's files: {}", files.len());
    // Files that only tests compile (`#[cfg(test)] mod name;`) draw no design arrows.
    let test_only: Vec<Module> = files
        .iter()
        .flat_map(|(module, path)| {
            let text = std::fs::read_to_string(path).expect("readable");
            test_only_children(&text)
                .into_iter()
                .map(|child| [module.clone(), vec![child]].concat())
                .collect::<Vec<_>>()
        })
        .collect();
    for module in &test_only {
        files.remove(module);
    }
    // `crate::Name` that the crate root re-exports (`pub use error::ApiError;`) is the
    // module that defines it.
    let root_exports =
        root_reexports(&std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs"));
    let mut arrows: BTreeMap<Module, BTreeMap<Module, BTreeSet<String>>> = BTreeMap::new();
    for (module, path) in &files {
        let text = without_test_modules(&without_comments(
            &std::fs::read_to_string(path).expect("readable"),
        ));
        let targets = arrows.entry(module.clone()).or_default();
        // `super` is the parent module, for `keys/rotation.rs` and `keys/mod.rs` alike.
        let parent: Module = module[..module.len().saturating_sub(1)].to_vec();
        let named_paths = crate_paths(&text, "crate::")
            .into_iter()
            .map(|path| match root_exports.get(&path[0]) {
                Some(home) => [home.clone(), path].concat(),
                None => path,
            })
            .chain(
                crate_paths(&text, "super::")
                    .into_iter()
                    .map(|path| [parent.clone(), path].concat()),
            );
        for named in named_paths {
            let Some(target) = (1..=named.len())
                .rev()
                .map(|len| named[..len].to_vec())
                .find(|prefix| files.contains_key(prefix))
            else {
                continue;
            };
            let is_ancestor = target.len() < module.len() && module[..target.len()] == target[..];
            if target != *module && !is_ancestor {
                let name = named.last().cloned().unwrap_or_default();
                targets.entry(target).or_default().insert(name);
            }
        }
    }

    let reaches = |from: &Module| -> BTreeSet<Module> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&Module> = arrows[from].keys().collect();
        while let Some(next) = todo.pop() {
            if seen.insert(next.clone()) {
                todo.extend(arrows[next].keys());
            }
        }
        seen
    };
    let reach: BTreeMap<&Module, BTreeSet<Module>> = files
        .keys()
        .map(|module| (module, reaches(module)))
        .collect();
    let mut loops: BTreeSet<BTreeSet<Module>> = BTreeSet::new();
    for module in files.keys() {
        if reach[module].contains(module) {
            let members: BTreeSet<Module> = files
                .keys()
                .filter(|other| reach[module].contains(*other) && reach[*other].contains(module))
                .cloned()
                .collect();
            loops.insert(members);
        }
    }
    let report: Vec<String> = loops
        .iter()
        .map(|members| {
            let mut lines = vec![format!(
                "a loop of {} files: {}",
                members.len(),
                members.iter().map(name).collect::<Vec<_>>().join(", ")
            )];
            for from in members {
                for (to, names) in &arrows[from] {
                    if members.contains(to) {
                        let names: Vec<&str> = names.iter().map(String::as_str).collect();
                        lines.push(format!(
                            "  {} -> {}: {}",
                            name(from),
                            name(to),
                            names.join(", ")
                        ));
                    }
                }
            }
            lines.join("\n")
        })
        .collect();
    assert!(
        report.is_empty(),
        "lower modules must not import higher ones; move the named items to the module \
         both can import:\n{}",
        report.join("\n")
    );
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "crate root".into()
    } else {
        module.join("::")
    }
}

/// Each `.rs` file under `src` by its module path (`keys/mod.rs` and `keys.rs` are `keys`).
fn modules_under(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut files = BTreeMap::new();
    let mut todo = vec![src.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("a source directory") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let relative = path
                    .strip_prefix(src)
                    .expect("under src")
                    .with_extension("");
                let mut module: Module = relative
                    .components()
                    .map(|part| part.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    module.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    module.pop();
                }
                files.insert(module, path);
            }
        }
    }
    files
}

/// The text without `//` and `/* */` comments (doc links name modules without importing
/// them) and without string literals' contents.
fn without_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if text[i..].starts_with("//") {
            i += text[i..].find('\n').unwrap_or(text.len() - i);
        } else if text[i..].starts_with("/*") {
            i += text[i..].find("*/").map_or(text.len() - i, |end| end + 2);
        } else if let Some(end) = char_literal_end(&text[i..]) {
            i += end;
            out.push_str("' '");
        } else if let Some(end) = raw_string_end(&text[i..]) {
            i += end;
            out.push_str("\"\"");
        } else if bytes[i] == b'"' && (i == 0 || bytes[i - 1] != b'\'') {
            // Skip to the closing quote, honouring escapes.
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            let ch = text[i..].chars().next().expect("a char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The length of the char literal (`'{'`, `'\n'`, `'\u{7b}'`) that `text` starts with, if
/// it starts with one (a lifetime such as `'a` is not one).
fn char_literal_end(text: &str) -> Option<usize> {
    let body = text.strip_prefix('\'')?;
    let end = if let Some(escaped) = body.strip_prefix('\\') {
        1 + escaped.find('\'')? + 1
    } else {
        body.chars().next()?.len_utf8()
    };
    (body[end..].starts_with('\'') && end <= 10).then_some(1 + end + 1)
}

/// The length of the raw string literal (`r"..."`, `r#"..."#`, `br#"..."#`) that `text`
/// starts with, if it starts with one.
fn raw_string_end(text: &str) -> Option<usize> {
    let after_prefix = text.strip_prefix("br").or_else(|| text.strip_prefix('r'))?;
    let hashes = after_prefix.len() - after_prefix.trim_start_matches('#').len();
    let body = after_prefix[hashes..].strip_prefix('"')?;
    let closing = format!("\"{}", "#".repeat(hashes));
    let end = body.find(&closing)?;
    Some(text.len() - body.len() + end + closing.len())
}

/// The text without the bodies of `#[cfg(test)] mod name { ... }`.
fn without_test_modules(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let trimmed = after.trim_start();
        let is_module = trimmed.starts_with("mod ")
            && trimmed
                .find(['{', ';'])
                .is_some_and(|end| trimmed.as_bytes()[end] == b'{');
        if !is_module {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        }
        let open = after.find('{').expect("a module body");
        let mut depth = 0usize;
        let mut end = after.len();
        for (offset, ch) in after[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + offset + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The names the crate root re-exports, each with the module that defines it.
fn root_reexports(lib: &str) -> BTreeMap<String, Module> {
    let mut exports = BTreeMap::new();
    for line in lib.lines() {
        let Some(path) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let path = path.trim_end_matches(';').trim_start_matches("crate::");
        let mut expanded = Vec::new();
        expand(path, Vec::new(), &mut expanded);
        for full in expanded {
            if let Some((name, home)) = full.split_last() {
                exports.insert(name.clone(), home.to_vec());
            }
        }
    }
    exports
}

/// The children a file declares for tests only: `#[cfg(test)] mod name;`.
fn test_only_children(text: &str) -> Vec<String> {
    let mut children = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        rest = &rest[at + "#[cfg(test)]".len()..];
        let next = rest.trim_start();
        if let Some(declared) = next.strip_prefix("mod ")
            && let Some((name, _)) = declared.split_once(';')
            && name
                .trim()
                .chars()
                .all(|ch| ch.is_alphanumeric() || ch == '_')
        {
            children.push(name.trim().to_string());
        }
    }
    children
}

/// Every path that starts with `prefix` (`crate::` or `super::`), with `{...}` groups
/// expanded, without the prefix.
fn crate_paths(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before_ok = at == 0
            || !rest[..at]
                .chars()
                .next_back()
                .is_some_and(|ch| ch.is_alphanumeric() || ch == '_' || ch == ':');
        rest = &rest[at + prefix.len()..];
        if before_ok {
            expand(rest, Vec::new(), &mut paths);
        }
    }
    paths
}

/// Reads `a::b::{c, d::E}` or `a::b::C` at the start of `text`, under `prefix`.
fn expand(text: &str, prefix: Vec<String>, paths: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    let mut rest = text;
    loop {
        let ident: String = rest
            .chars()
            .take_while(|ch| ch.is_alphanumeric() || *ch == '_')
            .collect();
        if ident.is_empty() {
            if let Some(group) = rest.strip_prefix('{') {
                for item in split_group(group) {
                    let item = item.trim();
                    if !item.is_empty() && item != "self" {
                        expand(item, path.clone(), paths);
                    }
                }
            } else if !path.is_empty() {
                paths.push(path);
            }
            return;
        }
        rest = &rest[ident.len()..];
        path.push(ident);
        match rest.strip_prefix("::") {
            Some(more) => rest = more,
            None => {
                paths.push(path);
                return;
            }
        }
    }
}

/// The top-level items of a `{...}` group whose opening brace was just read.
fn split_group(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (at, ch) in group.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..at]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items
}

#[test]
fn the_path_reader_expands_groups_and_ignores_comments_and_tests() {
    let text = without_test_modules(&without_comments(
        "use crate::a::{b, c::{D, e::F}, self};\n// crate::commented::Out\n\
         fn f() { crate::g::H::new(); \"crate::in_string\"; r#\"crate::raw\"q\"#; }\n\
         #[cfg(test)]\nmod tests { use crate::only_tests::X; }\n",
    ));
    let paths: Vec<String> = crate_paths(&text, "crate::")
        .iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(paths, ["a::b", "a::c::D", "a::c::e::F", "g::H::new"]);
    let text = without_test_modules(&without_comments(
        "use super::rotation::{Step, x::Y};\nlet open = '{'; let esc = '\\''; fn f<'a>(x: &'a str) {}\n\
         #[cfg(test)]\nmod tests { let c = '{'; use crate::only_tests::X; }\nuse crate::after::Z;\n",
    ));
    let paths: Vec<String> = crate_paths(&text, "super::")
        .iter()
        .chain(&crate_paths(&text, "crate::"))
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(paths, ["rotation::Step", "rotation::x::Y", "after::Z"]);
    assert_eq!(
        root_reexports("pub use error::ApiError;\npub use config::{Config, Other};\n")
            .into_iter()
            .map(|(name, home)| format!("{name}={}", home.join("::")))
            .collect::<Vec<_>>(),
        ["ApiError=error", "Config=config", "Other=config"]
    );
    assert_eq!(
        test_only_children("#[cfg(test)]\nmod tests;\n#[cfg(test)]\nmod inline {}"),
        ["tests"]
    );
}
