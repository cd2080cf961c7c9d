//! The architecture invariants of ARCHITECTURE.md and DESIGN.md as plain tests, in the spirit of
//! rust-analyzer's tidy tests: each failure names the file (and line when there is one), the rule
//! that was broken and what to do instead.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

#[path = "../src/io_crates.rs"]
mod io_crates;
use io_crates::IO_CRATES;

/// The only workspace members kept off crates.io.
const UNPUBLISHED: &[&str] = &["xtask", "payments-testkit"];

/// Words that mean provider knowledge, matched case-insensitively.
const PROVIDER_WORDS: &[&str] = &["mkp", "paypro", "klantportaal", "plk_"];

/// SQL that reads a column for a rule (filters, joins, groupings) rather than writing it.
const SQL_READING: &[&str] = &["select", "where", "join", "group by", "order by"];

/// The unified status words, as SQL literals.
const STATUS_LITERALS: &[&str] = &[
    "'open'",
    "'pending'",
    "'paid'",
    "'partially_refunded'",
    "'refunded'",
    "'charged_back'",
    "'failed'",
    "'canceled'",
    "'expired'",
    "'unknown'",
];

/// `schema-1.sql` to `schema-3.sql` were released before the source rules below were written, and
/// released migrations never change (their partial indexes name status words and the
/// `payment_link_id` column); the migration that replaces them is checked like any other file.
const LAST_MIGRATION_BEFORE_RULES: u32 = 3;

const NORMAL: &[Option<&str>] = &[None];
const ANY_KIND: &[Option<&str>] = &[None, Some("dev"), Some("build")];

#[test]
fn model_depends_on_no_workspace_crate() {
    check(dependencies(
        "payments-model",
        ANY_KIND,
        |_| false,
        "payments-model is the bottom layer and depends on none of this workspace's crates",
        "move the code that needs it into the crate that depends on payments-model",
    ));
}

/// `cargo tree` rather than the `resolve` graph of `cargo metadata`: the latter unifies features
/// across the whole workspace, so chrono's `clock` (enabled by other crates) would wrongly put
/// `iana-time-zone` under `payments-model`. `--target all` counts every platform's dependencies.
#[test]
fn model_dependency_tree_has_no_io_crate() {
    let tree = cargo(&[
        "tree",
        "-p",
        "payments-model",
        "-e",
        "normal",
        "--target",
        "all",
        "--prefix",
        "none",
    ]);
    let found: BTreeSet<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| IO_CRATES.contains(name))
        .collect();
    check(found.into_iter().map(|name| {
        format!(
            "crates/payments-model/Cargo.toml: payments-model's dependency tree contains `{name}`, \
             but payments-model does no I/O and starts no runtime; run \
             `cargo tree -p payments-model -e normal -i {name}` to see what brings it, and drop \
             that dependency (or feature) or move the code that needs it to another crate"
        )
    }));
}

#[test]
fn http_depends_on_model_alone() {
    check(dependencies(
        "payments-http",
        NORMAL,
        |dep| dep == "payments-model",
        "of this workspace's crates, payments-http depends on payments-model alone (it knows no provider)",
        "put provider-specific code in mkp-api or paypro-api, and give payments-http only what both share",
    ));
}

#[test]
fn provider_clients_depend_on_model_and_http_alone() {
    for client in ["mkp-api", "paypro-api"] {
        check(
            dependencies(
                client,
                NORMAL,
                |dep| ["payments-model", "payments-http"].contains(&dep),
                "of this workspace's crates, a provider client depends only on payments-model and payments-http",
                "use the other crate as a dev-dependency if only tests need it (the sandbox), or move the shared code into payments-http",
            )
            .into_iter()
            .chain(dependencies(
                client,
                ANY_KIND,
                |dep| !["mkp-api", "paypro-api", "payments-sync"].contains(&dep),
                "the provider clients never depend on each other nor on payments-sync, not even as dev-dependencies",
                "test a client on its own against the sandbox; tests that combine clients with the engine belong in payments-sync or payments-cli",
            )),
        );
    }
}

#[test]
fn sync_depends_on_model_alone() {
    check(dependencies(
        "payments-sync",
        NORMAL,
        |dep| dep == "payments-model",
        "of this workspace's crates, payments-sync depends on payments-model alone",
        "reach sources through the PaymentSource trait; the concrete clients and the sandbox belong in [dev-dependencies]",
    ));
}

#[test]
fn sqlite_depends_on_model_and_sync_alone() {
    check(dependencies(
        "payments-sqlite",
        NORMAL,
        |dep| ["payments-model", "payments-sync"].contains(&dep),
        "of this workspace's crates, payments-sqlite depends only on payments-model and payments-sync",
        "a store receives plain facts through the Store trait; clients and the sandbox belong in [dev-dependencies]",
    ));
}

#[test]
fn sandbox_depends_on_no_workspace_crate() {
    check(dependencies(
        "payments-sandbox",
        NORMAL,
        |_| false,
        "payments-sandbox depends on none of this workspace's crates: it writes the wire format from PROVIDERS.md itself",
        "write the JSON in the sandbox instead of reusing the clients' wire types",
    ));
}

#[test]
fn only_xtask_and_testkit_are_unpublished() {
    check(members().into_iter().filter_map(|package| {
        let name = name(package);
        let publish = &package["publish"];
        let manifest = manifest(package);
        let line = manifest_line(package, "publish");
        if UNPUBLISHED.contains(&name) {
            (publish.as_array().map(Vec::is_empty) != Some(true)).then(|| {
                format!(
                    "{manifest}{line}: {name} may be published (publish = {publish}), but it is a \
                     tool of this workspace; set `publish = false` in its [package]"
                )
            })
        } else {
            (!publish.is_null()).then(|| {
                format!(
                    "{manifest}{line}: {name} cannot be published to crates.io (publish = {publish}), \
                     but only {} are kept off it; remove its `publish` setting (and the workspace's)",
                    UNPUBLISHED.join(" and ")
                )
            })
        }
    }));
}

#[test]
fn no_published_crate_depends_on_testkit() {
    check(published().into_iter().flat_map(|package| {
        dependencies(
            name(package),
            NORMAL,
            |dep| dep != "payments-testkit",
            "payments-testkit is never published, so no published crate may depend on it",
            "move payments-testkit to [dev-dependencies], or move what is needed into a published crate",
        )
    }));
}

#[test]
fn no_provider_knowledge_in_engine_or_store() {
    check(scan(
        &["payments-sync", "payments-sqlite", "payments-postgres"],
        |line| {
            let line = line.to_lowercase();
            // `payment_link_id` is one of the unified record's fields, so a store writes it like
            // the other seventeen; what it may not do is join or group payments through it.
            let reads_link = line.contains("payment_link")
                && SQL_READING.iter().any(|clause| line.contains(clause));
            PROVIDER_WORDS
                .iter()
                .find(|word| line.contains(*word))
                .copied()
                .or(reads_link.then_some("payment_link"))
        },
        "the engine and the stores know no provider (provider knowledge lives in the provider crate)",
        "let the source declare it through the PaymentSource trait (its rate limit, its groups), or \
         store it under a provider-neutral name; comments may still name providers as examples",
    ));
}

#[test]
fn no_status_word_in_sql() {
    check(scan(
        &["payments-sqlite", "payments-postgres"],
        |line| {
            STATUS_LITERALS
                .iter()
                .find(|word| line.contains(*word))
                .copied()
        },
        "a store never re-derives policy (such as which statuses are unsettled) in its query language",
        "let payments-sync decide with PaymentStatus and pass the store plain facts (ids, times, \
         flags) to keep and query",
    ));
}

#[test]
fn every_crate_is_in_the_code_map() {
    let text = read(&root().join("ARCHITECTURE.md"));
    let code_map: BTreeSet<&str> = text
        .lines()
        .skip_while(|line| *line != "## Code Map")
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .collect();
    let mut crates: Vec<String> = std::fs::read_dir(root().join("crates"))
        .expect("reading crates/")
        .map(|entry| entry.expect("reading crates/"))
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    crates.sort();
    check(crates.into_iter().filter_map(|name| {
        let heading = format!("### `crates/{name}`");
        (!code_map.contains(heading.as_str())).then(|| {
            format!(
                "crates/{name}: ARCHITECTURE.md's Code Map has no `{heading}` heading; add one \
                 saying what the crate holds, where, and its architecture invariants"
            )
        })
    }));
}

#[test]
fn published_crates_have_package_metadata() {
    check(published().into_iter().flat_map(|package| {
        let dir = package_dir(package);
        let manifest = manifest(package);
        let name = name(package);
        let mut problems = Vec::new();
        for field in ["description", "readme", "keywords", "categories"] {
            let value = &package[field];
            let empty = value.is_null()
                || value.as_str() == Some("")
                || value.as_array().is_some_and(Vec::is_empty);
            if empty {
                problems.push(format!(
                    "{manifest}: {name} is published but its [package] has no `{field}`; add one \
                     for its crates.io page"
                ));
            }
        }
        if let Some(readme) = package["readme"].as_str()
            && !dir.join(readme).is_file()
        {
            problems.push(format!(
                "{manifest}{}: {name}'s readme `{readme}` does not exist; write it or point \
                 `readme` at an existing file",
                manifest_line(package, "readme")
            ));
        }
        for license in ["LICENSE-MIT", "LICENSE-APACHE"] {
            if !dir.join(license).is_file() {
                problems.push(format!(
                    "{}: {name} is published under MIT OR Apache-2.0 but has no {license} in its \
                     directory; add it (a symlink to the workspace's {license} will do)",
                    rel(&dir)
                ));
            }
        }
        problems
    }));
}

#[test]
fn every_crate_root_forbids_unsafe_code() {
    check(members().into_iter().flat_map(|package| {
        let roots = package["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .filter(|target| {
                target["kind"]
                    .as_array()
                    .expect("target kinds")
                    .iter()
                    .any(|kind| ["lib", "bin", "proc-macro"].contains(&kind.as_str().unwrap_or("")))
            })
            .map(|target| PathBuf::from(target["src_path"].as_str().expect("src_path")))
            .collect::<BTreeSet<_>>();
        roots.into_iter().filter_map(|root_file| {
            let forbids = read(&root_file)
                .lines()
                .any(|line| line.trim() == "#![forbid(unsafe_code)]");
            (!forbids).then(|| {
                format!(
                    "{}:1: crate root without `#![forbid(unsafe_code)]`; this workspace has no \
                     unsafe code, so add the attribute after the crate's docs",
                    rel(&root_file)
                )
            })
        })
    }));
}

// Helpers.

/// Fails with every violation, one per paragraph.
fn check(violations: impl IntoIterator<Item = String>) {
    let violations: Vec<String> = violations.into_iter().collect();
    assert!(
        violations.is_empty(),
        "\n{} architecture invariant violation(s):\n\n{}\n",
        violations.len(),
        violations.join("\n\n")
    );
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// A path relative to the workspace root, for messages.
fn rel(path: &Path) -> String {
    let root = root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// Runs cargo in the workspace root and returns what it printed.
fn cargo(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|err| panic!("running cargo {}: {err}", args.join(" ")));
    assert!(
        output.status.success(),
        "cargo {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("cargo printed UTF-8")
}

fn metadata() -> &'static Value {
    static METADATA: OnceLock<Value> = OnceLock::new();
    METADATA.get_or_init(|| {
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1"]))
            .expect("cargo metadata printed JSON")
    })
}

/// The workspace's packages, by name.
fn members() -> Vec<&'static Value> {
    let ids = metadata()["workspace_members"]
        .as_array()
        .expect("workspace_members");
    let mut members: Vec<&Value> = metadata()["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|package| ids.contains(&package["id"]))
        .collect();
    members.sort_by_key(|package| name(package));
    members
}

fn published() -> Vec<&'static Value> {
    members()
        .into_iter()
        .filter(|package| !UNPUBLISHED.contains(&name(package)))
        .collect()
}

fn name(package: &Value) -> &str {
    package["name"].as_str().expect("package name")
}

fn package_dir(package: &Value) -> PathBuf {
    Path::new(package["manifest_path"].as_str().expect("manifest_path"))
        .parent()
        .expect("a manifest is in a directory")
        .to_path_buf()
}

fn manifest(package: &Value) -> String {
    rel(&package_dir(package).join("Cargo.toml"))
}

/// `:N` for the first manifest line whose key is `key` (`key = …`, `key.workspace = …`), or
/// nothing; with `[section]` in `key`, only within that section.
fn manifest_line(package: &Value, key: &str) -> String {
    let (section, key) = match key.split_once(' ') {
        Some((section, key)) => (Some(section), key),
        None => (None, key),
    };
    let text = read(&package_dir(package).join("Cargo.toml"));
    let mut current = "";
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.starts_with('[') {
            current = line;
        } else if section.is_none_or(|section| section == current)
            && line
                .split(['=', '.'])
                .next()
                .is_some_and(|found| found.trim() == key)
        {
            return format!(":{}", index + 1);
        }
    }
    String::new()
}

/// The manifest section of a dependency kind as `cargo metadata` names it.
fn section(kind: Option<&str>) -> String {
    match kind {
        None => "[dependencies]".to_owned(),
        Some(kind) => format!("[{kind}-dependencies]"),
    }
}

/// One violation for each direct dependency of `krate`, of one of `kinds`, that is a crate of
/// this workspace and not `allowed`.
fn dependencies(
    krate: &str,
    kinds: &[Option<&str>],
    allowed: impl Fn(&str) -> bool,
    rule: &str,
    instead: &str,
) -> Vec<String> {
    let members = members();
    let workspace: BTreeSet<&str> = members.iter().map(|package| name(package)).collect();
    let package = *members
        .iter()
        .find(|package| name(package) == krate)
        .unwrap_or_else(|| panic!("{krate} is not a member of this workspace"));
    package["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .filter(|dep| kinds.contains(&dep["kind"].as_str()))
        .filter_map(|dep| {
            let dep_name = dep["name"].as_str().expect("dependency name");
            let kind = section(dep["kind"].as_str());
            (workspace.contains(dep_name) && !allowed(dep_name)).then(|| {
                format!(
                    "{}{}: {krate} has `{dep_name}` in {kind}, but {rule}; {instead}",
                    manifest(package),
                    manifest_line(package, &format!("{kind} {dep_name}")),
                )
            })
        })
        .collect()
}

/// One violation for each code line of the `src` files (`.rs`, `.sql`) of `crates` (those that
/// exist) in which `find` finds something. Lines starting with `//` or `--` are comments and
/// skipped, as are the migrations released before these rules.
fn scan(
    crates: &[&str],
    find: impl Fn(&str) -> Option<&'static str>,
    rule: &str,
    instead: &str,
) -> Vec<String> {
    let mut files = Vec::new();
    for krate in crates {
        collect_files(&root().join("crates").join(krate).join("src"), &mut files);
    }
    files.sort();
    files
        .iter()
        .filter(|path| !released_before_rules(path))
        .flat_map(|path| {
            let text = read(path);
            text.lines()
                .enumerate()
                .filter(|(_, line)| {
                    let line = line.trim_start();
                    !line.starts_with("//") && !line.starts_with("--")
                })
                .filter_map(|(index, line)| {
                    find(line).map(|found| {
                        format!(
                            "{}:{}: `{found}` in `{}`: {rule}; {instead}",
                            rel(path),
                            index + 1,
                            line.trim()
                        )
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `.rs` and `.sql` files under `dir`, recursively; nothing when `dir` does not exist.
fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("reading a directory entry").path();
        if path.is_dir() {
            collect_files(&path, files);
        } else if path
            .extension()
            .is_some_and(|extension| extension == "rs" || extension == "sql")
        {
            files.push(path);
        }
    }
}

/// `schema-N.sql` with N up to [`LAST_MIGRATION_BEFORE_RULES`].
fn released_before_rules(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("schema-"))
        .and_then(|rest| rest.strip_suffix(".sql"))
        .and_then(|version| version.parse::<u32>().ok())
        .is_some_and(|version| version <= LAST_MIGRATION_BEFORE_RULES)
}

// The source registry and the fleet (issue 19: one place for every rule).

#[test]
fn sources_registry_depends_on_model_http_and_providers_alone() {
    check(dependencies(
        "payments-sources",
        NORMAL,
        |dep| ["payments-model", "payments-http", "mkp-api", "paypro-api"].contains(&dep),
        "of this workspace's crates, payments-sources depends only on payments-model, payments-http and the provider crates: it sits above the providers and below everything that builds a source",
        "keep engine and store code out of the registry; a caller that needs both depends on both",
    ));
}

#[test]
fn postgres_depends_on_model_and_sync_alone() {
    check(dependencies(
        "payments-postgres",
        NORMAL,
        |dep| ["payments-model", "payments-sync"].contains(&dep),
        "of this workspace's crates, payments-postgres depends only on payments-model and payments-sync",
        "a store receives plain facts through the Store trait and reads back through payments_sync::codec; clients and the sandbox belong in [dev-dependencies]",
    ));
}

/// No module of `payments-sync` imports a module that imports it, directly or through others:
/// data flows one way through the engine (the pager fetches, the run decides, the store keeps),
/// so its modules form a graph without cycles. An import is a `use crate::…` or a
/// `crate::module::…` path in the code (comments aside) of `crates/payments-sync/src/*.rs`. The
/// crate root (`lib.rs`) is exempt, and so are the items it defines (`SyncError`, `Event`,
/// `StopSignal`, …): every module may use them; an item it re-exports (`crate::Syncer`) counts
/// as an import of the module that defines it.
#[test]
fn sync_modules_import_no_cycle() {
    use std::collections::{BTreeMap, VecDeque};

    /// The code of a file, comments blanked out (lines and their ends; newlines kept so that
    /// offsets still tell lines).
    fn code_of(text: &str) -> String {
        let mut code = String::with_capacity(text.len());
        for line in text.lines() {
            let mut in_string = false;
            let mut previous = ' ';
            let mut end = line.len();
            for (at, c) in line.char_indices() {
                match c {
                    '"' if previous != '\\' && previous != '\'' => in_string = !in_string,
                    '/' if !in_string && previous == '/' => {
                        end = at - 1;
                        break;
                    }
                    _ => {}
                }
                previous = c;
            }
            code.push_str(&line[..end]);
            code.push('\n');
        }
        code
    }

    /// The identifier at the start of `text` (after blanks).
    fn leading_ident(text: &str) -> &str {
        let text = text.trim_start();
        let end = text
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        &text[..end]
    }

    /// The first names of every path after each `crate::` in `code`, with their offsets:
    /// `crate::feed::Step` gives `feed`, `crate::{Event, run::SourceRun}` gives `Event`, `run`.
    fn crate_paths(code: &str) -> Vec<(usize, String)> {
        let mut found = Vec::new();
        for (at, _) in code.match_indices("crate::") {
            let before = code[..at].chars().next_back().unwrap_or(' ');
            if before.is_alphanumeric() || before == '_' || before == '$' {
                continue;
            }
            let rest = code[at + "crate::".len()..].trim_start();
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 1;
                let mut item_start = 0;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' | ',' if depth == 1 => {
                            found.push((at, leading_ident(&group[item_start..i]).to_owned()));
                            item_start = i + 1;
                            if c == '}' {
                                break;
                            }
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
            } else {
                found.push((at, leading_ident(rest).to_owned()));
            }
        }
        found
    }

    let src = root().join("crates/payments-sync/src");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap_or_else(|err| panic!("reading {}: {err}", src.display()))
        .map(|entry| entry.expect("reading a directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "rs"))
        .collect();
    files.sort();
    let module_of = |path: &Path| {
        path.file_stem()
            .and_then(|stem| stem.to_str())
            .expect("a file name")
            .to_owned()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|path| module_of(path))
        .filter(|module| module != "lib")
        .collect();
    assert!(
        modules.len() > 1,
        "no modules found in {}: the test reads the wrong place",
        src.display()
    );
    // What the root re-exports, by the name it is used under: `crate::Syncer` is an import of
    // `syncer` as much as `crate::syncer::Syncer` is.
    let mut reexported: BTreeMap<String, String> = BTreeMap::new();
    let root_code = code_of(&read(&src.join("lib.rs")));
    for (at, _) in root_code.match_indices("pub use ") {
        let statement = &root_code[at + "pub use ".len()..];
        let statement = &statement[..statement.find(';').unwrap_or(statement.len())];
        let Some((module, items)) = statement.split_once("::") else {
            continue;
        };
        let module = module.trim();
        if !modules.contains(module) {
            continue;
        }
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let used_as = item.rsplit(" as ").next().unwrap_or(item);
            reexported.insert(leading_ident(used_as).to_owned(), module.to_owned());
        }
    }
    // Each module's imports of other modules, with the line of the first.
    let mut imports: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for path in &files {
        let module = module_of(path);
        if module == "lib" {
            continue;
        }
        let code = code_of(&read(path));
        let edges = imports.entry(module.clone()).or_default();
        for (at, name) in crate_paths(&code) {
            let name = reexported.get(&name).cloned().unwrap_or(name);
            if modules.contains(&name) && name != module {
                let line = code[..at].matches('\n').count() + 1;
                edges.entry(name).or_insert(line);
            }
        }
    }
    // The shortest way back to each module from what it imports, when there is one.
    let mut cycles = BTreeSet::new();
    for start in &modules {
        let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue: VecDeque<&String> = VecDeque::from([start]);
        let mut back = None;
        while let Some(module) = queue.pop_front() {
            for next in imports.get(module).into_iter().flat_map(BTreeMap::keys) {
                if next == start {
                    back = Some(module);
                    break;
                }
                if !came_from.contains_key(next) {
                    came_from.insert(next, module);
                    queue.push_back(next);
                }
            }
            if back.is_some() {
                break;
            }
        }
        let Some(mut module) = back else {
            continue;
        };
        let mut cycle = vec![start.clone()];
        while module != start {
            cycle.push(module.clone());
            module = came_from[module];
        }
        cycle[1..].reverse();
        // One cycle, whichever module it is found from: it starts at its least module.
        let least = (0..cycle.len())
            .min_by_key(|&i| &cycle[i])
            .expect("a cycle has modules");
        cycle.rotate_left(least);
        cycles.insert(cycle);
    }
    check(cycles.into_iter().map(|cycle| {
        let steps: Vec<String> = cycle
            .iter()
            .zip(cycle.iter().cycle().skip(1))
            .map(|(from, to)| format!("{from}.rs:{} uses `{to}`", imports[from][to]))
            .collect();
        format!(
            "{}: the modules {} import each other in a cycle ({}); a module of the engine uses \
             only modules below it and the crate root: move what they share into a module of \
             its own (as options.rs holds SyncOptions) and import it from there",
            rel(&src),
            cycle.join(" → "),
            steps.join(", ")
        )
    }));
}

#[test]
fn fleet_depends_on_the_libraries_alone() {
    check(dependencies(
        "payments-fleet",
        NORMAL,
        |dep| {
            [
                "payments-model",
                "payments-sync",
                "payments-postgres",
                "payments-sources",
                "payments-serve",
            ]
            .contains(&dep)
        },
        "of this workspace's crates, payments-fleet depends only on payments-sync, payments-postgres, payments-sources and payments-serve (its ingress; and the model); it builds sources through the registry, never a provider crate",
        "build the source from its SourceSpec (payments-sources), or move the code into the crate it belongs to",
    ));
}

/// ARCHITECTURE.md: "the binary holds no sync or storage logic". It reaches providers through
/// the registry alone, and the fleet's queue through payments-fleet alone.
#[test]
fn binary_holds_no_sync_or_storage_logic() {
    check(dependencies(
        "payments-cli",
        NORMAL,
        |dep| !["mkp-api", "paypro-api", "payments-http"].contains(&dep),
        "payments-cli depends on no provider crate: every source is built by payments-sources",
        "build the source from a payments_sources::SourceSpec; a provider's default (base URL, rate limit) is data of the registry",
    ));
    const SOURCE_BUILDING: &[&str] = &[
        "RateLimit::per",
        "RateLimit {",
        "MkpClient",
        "PayProClient",
        "MkpSource",
        "PayProSource",
        "\"mkp\"",
        "\"paypro\"",
    ];
    const QUEUE: &[&str] = &[".lease_due(", ".renew(", ".release(", "leased_store("];
    check(scan(
        &["payments-cli"],
        |line| {
            SOURCE_BUILDING
                .iter()
                .find(|word| contains_token(line, word))
                .copied()
        },
        "the binary builds no source itself and matches no provider by name (a third provider must need no change here)",
        "describe the source as a payments_sources::SourceSpec and build it with `build(key)`; turn a stored source name into a provider with `Source::from_word` in payments-fleet",
    ));
    check(scan(
        &["payments-cli"],
        |line| QUEUE.iter().find(|word| line.contains(*word)).copied(),
        "the binary holds no fleet logic: leasing, renewing and releasing are payments-fleet's `Worker`",
        "call payments_fleet::Worker (round, sync, run) and keep only flags and printing in payments-cli",
    ));
}

/// Whether `word` is in `line` as a whole token: not preceded by a character of an identifier
/// (`RateLimit {` is in `RateLimit { limit, .. }`, not in `ZeroRateLimit { .. }`).
fn contains_token(line: &str, word: &str) -> bool {
    line.match_indices(word).any(|(at, _)| {
        !line[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}
