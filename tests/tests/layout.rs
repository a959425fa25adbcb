//! The README's layout table and the tree are the same: every directory of the repository,
//! every module of the core crate, every test helper and every script has its row, and
//! every row names a path that exists. A newcomer goes from the table to the file in one
//! step; a file added without a row, or a row left behind by a move, fails here.

use integration_tests::workspace_root;
use std::collections::BTreeSet;
use std::path::Path;

/// What `.gitignore` keeps out of the repository (build output, tools, local state).
const NOT_IN_THE_REPOSITORY: &[&str] = &[
    ".git",
    "target",
    ".tools",
    ".aws-sam",
    "node_modules",
    ".local",
    ".schemathesis",
    ".hypothesis",
];

#[test]
fn the_readme_layout_table_and_the_tree_are_the_same() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let rows = layout_rows(&readme);
    assert!(rows.len() > 20, "the layout table was read: {rows:?}");

    let missing_paths: Vec<&String> = rows
        .iter()
        .filter(|path| !root.join(path.trim_end_matches('/')).exists())
        .collect();
    assert!(
        missing_paths.is_empty(),
        "rows naming paths that do not exist: {missing_paths:?}"
    );

    let mut expected = BTreeSet::new();
    for (dir, what) in [
        ("", Entries::DirectoriesOnly),
        ("shared/src", Entries::All),
        ("tests/src", Entries::All),
        ("scripts", Entries::All),
        ("functions", Entries::DirectoriesOnly),
    ] {
        expected.extend(entries(&root, dir, what));
    }
    expected.insert("shared/tests/".to_string());
    let without_row: Vec<&String> = expected.difference(&rows).collect();
    assert!(
        without_row.is_empty(),
        "paths without a row in the README's layout table: {without_row:?}"
    );
}

#[derive(Clone, Copy, PartialEq)]
enum Entries {
    All,
    DirectoriesOnly,
}

/// The entries of `dir` as the table writes them: `dir/name` for a file, `dir/name/` for
/// a directory.
fn entries(root: &Path, dir: &str, what: Entries) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root.join(dir))
        .expect("a directory")
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if NOT_IN_THE_REPOSITORY.contains(&name.as_str()) {
            continue;
        }
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        if entry.path().is_dir() {
            found.push(format!("{prefix}{name}/"));
        } else if what == Entries::All {
            found.push(format!("{prefix}{name}"));
        }
    }
    found
}

/// The first cells of the table under `## Layout`, without their backticks.
fn layout_rows(readme: &str) -> BTreeSet<String> {
    let section = readme
        .split("\n## Layout\n")
        .nth(1)
        .expect("a Layout section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|line| line.split('`').next())
        .map(String::from)
        .collect()
}
