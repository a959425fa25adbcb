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

/// A folder of the core crate has one row, which names every file and folder directly in
/// it, and every file it names exists in it (at any depth).
#[test]
fn each_core_folder_row_names_what_the_folder_holds() {
    let root = workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let section = readme
        .split("\n## Layout\n")
        .nth(1)
        .expect("a Layout section");
    let mut checked = 0;
    for line in section.lines() {
        let Some(rest) = line.strip_prefix("| `shared/src/") else {
            continue;
        };
        let Some((folder, description)) = rest.split_once("` |") else {
            continue;
        };
        if !folder.ends_with('/') {
            continue;
        }
        checked += 1;
        let dir = root.join("shared/src").join(folder);
        let named: BTreeSet<&str> = description.split('`').skip(1).step_by(2).collect();
        for entry in std::fs::read_dir(&dir).expect("the folder").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let written = if entry.path().is_dir() {
                format!("{name}/")
            } else {
                name
            };
            assert!(
                named.contains(written.as_str()),
                "the row of shared/src/{folder} does not name {written}"
            );
        }
        for name in named
            .iter()
            .filter(|name| name.ends_with(".rs") || name.ends_with('/'))
        {
            assert!(
                exists_under(&dir, name.trim_end_matches('/')),
                "the row of shared/src/{folder} names {name}, which is not in it"
            );
        }
    }
    assert!(checked >= 3, "the core's folder rows were read ({checked})");
}

fn exists_under(dir: &Path, name: &str) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            entry.file_name().to_string_lossy() == name
                || (entry.path().is_dir() && exists_under(&entry.path(), name))
        })
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
