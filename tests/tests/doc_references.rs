//! Every place the code points a reader at our documents points at something that exists:
//! each `SECURITY.md row N` (or `rows N-M`, `rows N, M`) is a row of SECURITY.md's rule
//! tables, each `SECURITY.md section X` one of its sections, and each `README "Name"` (or
//! `README's "Name"`, `README, "Name"`) a heading of README.md. A reference that dangles
//! sends a reader nowhere; this test names it.

use integration_tests::workspace_root;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where references live: code, scripts, the template, the build files, the web page.
const EXTENSIONS: &[&str] = &["rs", "sh", "py", "yaml", "yml", "toml", "js", "html"];
const SKIPPED_DIRS: &[&str] = &[
    "target",
    ".tools",
    ".aws-sam",
    "node_modules",
    ".git",
    ".local",
];

#[test]
fn every_reference_to_our_documents_exists() {
    let root = workspace_root();
    let security = std::fs::read_to_string(root.join("SECURITY.md")).expect("SECURITY.md");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let documents = Documents::read(&security, &readme);
    assert!(documents.rows.len() > 30, "SECURITY.md's rows were read");

    let mut dangling = Vec::new();
    let mut seen = 0;
    for path in source_files(&root) {
        if path.ends_with("tests/tests/doc_references.rs") {
            continue; // its own examples
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for reference in references(&text) {
            seen += 1;
            if !documents.has(&reference) {
                let relative = path.strip_prefix(&root).unwrap_or(&path).display();
                dangling.push(format!("{relative}: {reference:?}"));
            }
        }
    }
    assert!(seen > 10, "references were found ({seen})");
    assert!(
        dangling.is_empty(),
        "references to rows, sections or headings that do not exist:\n{}",
        dangling.join("\n")
    );
}

/// Each test SECURITY.md names as proof (`path/to/file.rs::test_name`) exists there.
#[test]
fn every_test_security_md_names_exists() {
    let root = workspace_root();
    let security = std::fs::read_to_string(root.join("SECURITY.md")).expect("SECURITY.md");
    let named: Vec<(&str, &str)> = security
        .split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|code| code.split_once("::"))
        .filter(|(path, _)| path.ends_with(".rs") || path.ends_with(".py"))
        .collect();
    assert!(
        named.len() > 50,
        "SECURITY.md's tests were read: {}",
        named.len()
    );
    let missing: Vec<String> = named
        .iter()
        .filter(|(path, name)| {
            let text = std::fs::read_to_string(root.join(path)).unwrap_or_default();
            let definition = if path.ends_with(".py") { "def " } else { "fn " };
            !text.contains(&format!("{definition}{name}("))
        })
        .map(|(path, name)| format!("{path}::{name}"))
        .collect();
    assert!(
        missing.is_empty(),
        "SECURITY.md names tests that do not exist: {missing:?}"
    );
    // And every file or directory it names as code.
    let gone: Vec<&str> = security
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|code| !code.contains("::") && !code.contains(' '))
        .filter(|code| {
            [
                "shared/",
                "tests/",
                "functions/",
                "scripts/",
                "local-gateway/",
                "cli/",
                "events/",
            ]
            .iter()
            .any(|dir| code.starts_with(dir))
                || code.ends_with(".yaml")
        })
        .filter(|path| !root.join(path.trim_end_matches('/')).exists())
        .collect();
    assert!(
        gone.is_empty(),
        "SECURITY.md names paths that do not exist: {gone:?}"
    );
}

#[test]
fn a_dangling_reference_is_caught() {
    let security =
        "## A. Tokens\n| # | Rule | Proved by |\n|---|---|---|\n| 1 | x | y |\n| 2 | x | y |\n";
    let readme = "# Title\n## Signing keys\n### Testing with `sam local`\n";
    let documents = Documents::read(security, readme);
    let text = "// SECURITY.md rows\n// 1-2; SECURITY.md row 3; README \"Signing keys\"\n\
                # README, \"Testing with sam\n# local\"; the README's \"Nowhere\"\n\
                // SECURITY.md section A; SECURITY.md section Z";
    let verdicts: Vec<(String, bool)> = references(text)
        .into_iter()
        .map(|reference| (format!("{reference:?}"), documents.has(&reference)))
        .collect();
    let dangling: Vec<&str> = verdicts
        .iter()
        .filter(|(_, exists)| !exists)
        .map(|(reference, _)| reference.as_str())
        .collect();
    assert_eq!(
        dangling,
        ["Row(3)", "Section(\"Z\")", "Heading(\"Nowhere\")"],
        "{verdicts:?}"
    );
}

#[derive(Debug)]
enum Reference {
    Row(u32),
    Section(String),
    Heading(String),
}

struct Documents {
    rows: BTreeSet<u32>,
    sections: BTreeSet<String>,
    headings: BTreeSet<String>,
}

impl Documents {
    fn read(security: &str, readme: &str) -> Self {
        let rows = security
            .lines()
            .filter_map(|line| line.strip_prefix('|'))
            .filter_map(|line| line.split('|').next())
            .filter_map(|cell| cell.trim().parse().ok())
            .collect();
        // `## A. Token verification` is section `A` (and its full title).
        let sections = security
            .lines()
            .filter_map(|line| {
                line.strip_prefix("## ")
                    .or_else(|| line.strip_prefix("### "))
            })
            .flat_map(|title| {
                let letter = title.split('.').next().unwrap_or("").trim().to_string();
                [normalized(title), normalized(&letter)]
            })
            .collect();
        let headings = readme
            .lines()
            .filter(|line| line.starts_with('#'))
            .map(|line| normalized(line.trim_start_matches('#')))
            .collect();
        Self {
            rows,
            sections,
            headings,
        }
    }

    fn has(&self, reference: &Reference) -> bool {
        match reference {
            Reference::Row(row) => self.rows.contains(row),
            Reference::Section(name) => self.sections.contains(&normalized(name)),
            Reference::Heading(name) => self.headings.contains(&normalized(name)),
        }
    }
}

/// A title as compared: no backticks, one space between words, lower case.
fn normalized(title: &str) -> String {
    title
        .replace('`', "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The references in `text`.
fn references(text: &str) -> Vec<Reference> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("SECURITY.md") {
        let after = &text[at + "SECURITY.md".len()..];
        let after = after.trim_start_matches([' ', ',']);
        if let Some(list) = after
            .strip_prefix("rows")
            .or_else(|| after.strip_prefix("row"))
            .filter(|list| list.starts_with(char::is_whitespace))
        {
            // The numbers may follow on the next comment line.
            let list = list.trim_start_matches([' ', '\n', '\r', '/', '!', '#', '*']);
            found.extend(row_numbers(list).into_iter().map(Reference::Row));
        } else if let Some(name) = after.strip_prefix("section ") {
            let name: String = name.chars().take_while(|ch| ch.is_alphanumeric()).collect();
            found.push(Reference::Section(name));
        }
    }
    for (at, _) in text.match_indices("README") {
        let after = &text[at + "README".len()..];
        // The name may follow on the next comment line.
        let after = after
            .strip_prefix("'s")
            .unwrap_or(after)
            .trim_start_matches([' ', ',', '\n', '\r', '/', '!', '#', '*']);
        for quote in ['"', '\''] {
            // A heading starts with a capital; a quote that closes a string does not.
            if let Some(quoted) = after.strip_prefix(quote)
                && quoted.starts_with(char::is_uppercase)
                && let Some(end) = quoted.find(quote)
                && end < 200
            {
                // A name broken over two comment lines is read as one.
                let name: Vec<&str> = quoted[..end]
                    .lines()
                    .map(|line| line.trim().trim_start_matches(['/', '!', '#', '*']).trim())
                    .collect();
                found.push(Reference::Heading(name.join(" ")));
            }
        }
    }
    found
}

/// `2-23`, `6, 57, 58`, `20, 28, 33-37`, `54-55 and 57` at the start of `list`.
fn row_numbers(list: &str) -> Vec<u32> {
    let mut rows = Vec::new();
    let mut rest = list;
    loop {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(first) = digits.parse::<u32>() else {
            return rows;
        };
        rest = &rest[digits.len()..];
        let last = match rest.strip_prefix('-').or_else(|| rest.strip_prefix('–')) {
            Some(range) => {
                let digits: String = range.chars().take_while(char::is_ascii_digit).collect();
                rest = &range[digits.len()..];
                digits.parse().unwrap_or(first)
            }
            None => first,
        };
        rows.extend(first..=last);
        rest = match rest
            .strip_prefix(", ")
            .or_else(|| rest.strip_prefix(" and "))
            .or_else(|| rest.strip_prefix(','))
        {
            Some(more) => more,
            None => return rows,
        };
    }
}

fn source_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !SKIPPED_DIRS.contains(&name.as_str()) {
                    todo.push(path);
                }
            } else if name == "Makefile"
                || path
                    .extension()
                    .is_some_and(|ext| EXTENSIONS.contains(&ext.to_string_lossy().as_ref()))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
