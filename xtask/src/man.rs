//! `cargo xtask man [--out DIR]`: the man pages of `payments`, written with `clap_mangen` from
//! the very command definition the binary parses (`payments_cli::command()`).
//!
//! One page for `payments` (`payments.1`) and one per subcommand (`payments-sync.1`, …), in
//! `DIR` (default: `man/` in the target directory). The text clap prints after the options
//! (examples, env-file and crontab lines) becomes a section of its own whose indented lines are
//! set unfilled, so that they read and paste as written, as they do in `--help`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap_mangen::Man;
use clap_mangen::roff::{Roff, roman};

/// `cargo xtask man [--out DIR]`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut out = None;
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        match flag.as_str() {
            "--out" => {
                out = Some(PathBuf::from(
                    iter.next().context("--out needs a directory")?,
                ))
            }
            other => bail!("unknown argument `{other}`; use `cargo xtask man [--out DIR]`"),
        }
    }
    let out = out.unwrap_or_else(default_out);
    for page in write_pages(payments_cli::command(), &out)? {
        println!("{}", page.display());
    }
    Ok(())
}

/// `man/` in the target directory (`CARGO_TARGET_DIR`, or the workspace's `target/`).
fn default_out() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::workspace_root().join("target"))
        .join("man")
}

/// Writes the page of `command` and one page per visible subcommand into `out` (created if
/// need be), and returns their paths, `command`'s first.
pub(crate) fn write_pages(command: clap::Command, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // Without `help`, which has no page; building names each subcommand `payments-sync`.
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let version = command.get_version().unwrap_or_default().to_owned();
    let source = format!("{} {version}", command.get_name());
    let date = page_date();
    let pages = std::iter::once((&command, None))
        .chain(
            command
                .get_subcommands()
                .filter(|sub| !sub.is_hide_set())
                .map(|sub| (sub, Some(command.get_name()))),
        )
        .map(|(page, parent)| {
            let path = out.join(format!(
                "{}.1",
                page.get_display_name().unwrap_or_else(|| page.get_name())
            ));
            let text = render(page, &date, &source, parent)?;
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(pages)
}

/// The date on the pages: the last commit's, so that the same commit gives the same pages (today's
/// outside a git checkout). Without one, clap_mangen's `.TH` line would shift the source into the
/// date's place.
fn page_date() -> String {
    let git = std::process::Command::new("git")
        .args(["log", "-1", "--format=%cs"])
        .current_dir(crate::workspace_root())
        .output();
    match git {
        Ok(output) if output.status.success() && !output.stdout.trim_ascii().is_empty() => {
            String::from_utf8_lossy(output.stdout.trim_ascii()).into_owned()
        }
        _ => chrono::Utc::now().format("%Y-%m-%d").to_string(),
    }
}

/// The page of `command` (built), in roff; `parent` is the command it is a subcommand of.
fn render(
    command: &clap::Command,
    date: &str,
    source: &str,
    parent: Option<&str>,
) -> Result<Vec<u8>> {
    let name = command
        .get_display_name()
        .unwrap_or_else(|| command.get_name());
    let man = Man::new(command.clone())
        .title(name.to_uppercase())
        .date(date)
        .source(source);
    let mut extra = Roff::default();
    if let Some(after_help) = command.get_after_long_help().or(command.get_after_help()) {
        after_help_section(&mut extra, &after_help.to_string());
    }
    if let Some(parent) = parent {
        extra.control("SH", ["SEE ALSO"]);
        extra.text([roman(format!("{parent}(1)"))]);
    }
    // Each part is rendered on its own (so that clap_mangen's EXTRA section can be replaced),
    // and each starts with roff's preamble, which the page needs once.
    let preamble = Roff::default().render();
    let mut page = preamble.clone().into_bytes();
    let mut add = |render: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| -> Result<()> {
        let mut part = Vec::new();
        render(&mut part)?;
        page.extend_from_slice(part.strip_prefix(preamble.as_bytes()).unwrap_or(&part));
        Ok(())
    };
    add(&|w| man.render_title(w))?;
    add(&|w| man.render_name_section(w))?;
    add(&|w| man.render_synopsis_section(w))?;
    add(&|w| man.render_description_section(w))?;
    if command.get_arguments().any(|arg| !arg.is_hide_set()) {
        add(&|w| man.render_options_section(w))?;
    }
    if command.get_subcommands().any(|sub| !sub.is_hide_set()) {
        add(&|w| man.render_subcommands_section(w))?;
    }
    add(&|w| extra.to_writer(w))?;
    if command.get_version().is_some() {
        add(&|w| man.render_version_section(w))?;
    }
    Ok(page)
}

/// The text clap prints after the options, as a section: titled by its first line when that is
/// a heading (`Examples:` gives EXAMPLES, `Installation, for …:` INSTALLATION), NOTES otherwise. Indented lines (command lines,
/// env-file and crontab lines) are set unfilled, as written; clap_mangen's own EXTRA section
/// would fill them into one paragraph, as clap's doc comments did. The rest is filled prose.
fn after_help_section(roff: &mut Roff, text: &str) {
    let (title, body) = match text.split_once('\n') {
        Some((first, rest)) if !first.starts_with(' ') && first.ends_with(':') => {
            // `Example, in a shell script:` and `Installation (…):` are titled by their first words.
            let title = first.split([',', '(', ':']).next().unwrap_or(first).trim();
            (title.to_uppercase(), rest)
        }
        _ => ("NOTES".to_owned(), text),
    };
    roff.control("SH", [title.as_str()]);
    let mut unfilled = false;
    for line in body.lines() {
        let indented = line.starts_with(' ');
        if indented != unfilled {
            if indented {
                roff.control("RS", ["4"]).control("nf", []);
            } else {
                roff.control("fi", []).control("RE", []);
            }
            unfilled = indented;
        }
        if line.trim().is_empty() {
            roff.control("PP", []);
        } else if indented {
            // The block is indented by .RS; deeper lines keep the rest of their indent.
            roff.text([roman(line.strip_prefix("  ").unwrap_or(line))]);
        } else {
            roff.text([roman(line)]);
        }
    }
    if unfilled {
        roff.control("fi", []).control("RE", []);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page's roff with its escapes undone, enough to compare with what `--help` prints.
    fn page(dir: &Path, name: &str) -> String {
        let text = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{name} was not written: {e}"));
        text.replace("\\-", "-")
            .replace("\\*(Aq", "'")
            .replace("\\\\", "\\")
    }

    /// The lines of `text` between `.nf` and `.fi`.
    fn unfilled(text: &str) -> Vec<&str> {
        let mut lines = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            match line {
                ".nf" => inside = true,
                ".fi" => inside = false,
                _ if inside => lines.push(line),
                _ => {}
            }
        }
        lines
    }

    #[test]
    fn writes_a_page_for_payments_and_one_per_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_pages(payments_cli::command(), dir.path()).unwrap();
        let mut names: Vec<String> = written
            .iter()
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names[0], "payments.1");
        names.sort();
        assert_eq!(
            names,
            [
                "payments-accounts.1",
                "payments-check.1",
                "payments-completions.1",
                "payments-demo.1",
                "payments-export.1",
                "payments-quarantine.1",
                "payments-report.1",
                "payments-sandbox.1",
                "payments-serve.1",
                "payments-show.1",
                "payments-statement.1",
                "payments-status.1",
                "payments-sync.1",
                "payments-worker.1",
                "payments.1",
            ]
        );
        for name in &names {
            let text = page(dir.path(), name);
            let title = name.trim_end_matches(".1").to_uppercase();
            let th = text
                .find(&format!("\n.TH {title} 1 {} \"payments ", page_date()))
                .unwrap_or_else(|| panic!("{name} has no .TH line for {title}:\n{text}"));
            let sh = text.find("\n.SH NAME\n").expect("a NAME section");
            assert!(th < sh, "{name}: .TH comes before the sections:\n{text}");
            assert_eq!(text.matches(".ds Aq").count(), 2, "{name}: one preamble");
            assert!(text.contains("\n.SH SYNOPSIS\n"), "{name}:\n{text}");
        }

        let root = page(dir.path(), "payments.1");
        assert!(
            root.contains("payments - Keeps one exact, up-to-date ledger"),
            "{root}"
        );
        assert!(
            root.contains("payments-sync(1)"),
            "lists the subcommand pages: {root}"
        );
        assert!(root.contains("Exit codes: 0 done;"), "{root}");
        assert!(!dir.path().join("payments-help.1").exists());

        let completions = page(dir.path(), "payments-completions.1");
        assert!(
            completions.contains("\n.SH INSTALLATION\n"),
            "{completions}"
        );
        assert!(completions.contains("\n.SH OPTIONS\n"), "{completions}");

        let sync = page(dir.path(), "payments-sync.1");
        assert!(sync.contains("\n.SH EXAMPLES\n"), "{sync}");
        assert!(sync.contains("MKP_API_KEY"), "the environment: {sync}");
        assert!(sync.contains("max-duration"), "the options: {sync}");
        let examples = unfilled(&sync);
        for line in [
            "payments sync --source paypro --full",
            "PAYMENTS_DB=/var/lib/payments/ledger.db",
            "*/5 * * * *  set -a; . ~/payments.env; payments sync >>~/payments.log 2>&1",
        ] {
            assert!(
                examples.contains(&line),
                "payments-sync.1 sets `{line}` unfilled, on its own line:\n{sync}"
            );
        }
        let accounts = page(dir.path(), "payments-accounts.1");
        for subcommand in ["add", "update", "list", "remove"] {
            assert!(
                accounts.contains(&format!("\n.TP\npayments-accounts-{subcommand}(1)\n")),
                "payments-accounts.1 lists `accounts {subcommand}`:\n{accounts}"
            );
        }
        assert!(
            accounts.contains("payments-accounts-update(1)\nChanges an account's sources"),
            "{accounts}"
        );
        for line in [
            "payments accounts update acme-bv --every 15m",
            "MKP_API_KEY=... payments accounts update acme-bv --source mkp --key",
        ] {
            assert!(
                unfilled(&accounts).contains(&line),
                "payments-accounts.1 sets `{line}` unfilled:\n{accounts}"
            );
        }
        let export = page(dir.path(), "payments-export.1");
        assert!(
            unfilled(&export).contains(&"    --until 2026-10-31 --output october.csv"),
            "a continued line keeps its indent:\n{export}"
        );
    }

    #[test]
    fn prose_after_the_options_is_filled_and_examples_are_not() {
        let mut roff = Roff::default();
        after_help_section(
            &mut roff,
            "Examples:\n  a --b\n  c\n\nThen some prose\nover two lines:\n  d -e",
        );
        assert_eq!(
            roff.to_roff(),
            ".SH EXAMPLES\n.RS 4\n.nf\na \\-\\-b\nc\n.fi\n.RE\n.PP\nThen some prose\nover two lines:\n.RS 4\n.nf\nd \\-e\n.fi\n.RE\n"
        );
    }
}
