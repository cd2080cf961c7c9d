//! `--help` as a user reads and pastes it, and `payments completions`.

use std::process::{Command, Stdio};

use crate::{payments, run, text};

/// `payments` with a terminal width, as clap reads it when stdout is not a terminal.
fn at_columns(columns: u16) -> Command {
    let mut command = payments();
    command.env("COLUMNS", columns.to_string());
    command
}

/// The help `args` print at `columns`, checked to exit 0.
fn help(args: &[&str], columns: u16) -> String {
    text(&run(at_columns(columns).args(args), 0).stdout)
}

/// Fails unless each of `expected` is a whole line of `output`, exactly as written.
fn assert_lines(output: &str, expected: &[&str], what: &str) {
    let lines: Vec<&str> = output.lines().collect();
    for line in expected {
        assert!(
            lines.contains(line),
            "{what} does not print this line as written, on a line of its own:\n{line}\n\
             --- it printed:\n{output}"
        );
    }
}

/// The commands a user can ask for help about, as argument lists (`[]` is `payments` itself).
fn commands() -> Vec<Vec<String>> {
    let root = payments_cli::command();
    std::iter::once(Vec::new())
        .chain(
            root.get_subcommands()
                .map(|sub| sub.get_name())
                .filter(|name| *name != "help")
                .map(|name| vec![name.to_owned()]),
        )
        .collect()
}

#[test]
fn examples_print_exactly_as_written_one_per_line() {
    let cases: &[(&str, &[&str])] = &[
        (
            "sync",
            &[
                "Examples:",
                "  MKP_API_KEY=... PAYPRO_API_KEY=... payments sync --db ledger.db",
                "  payments sync --source paypro --full",
                "  MKP_API_KEY=...",
                "  PAYPRO_API_KEY=...",
                "  PAYMENTS_DB=/var/lib/payments/ledger.db",
                "  */5 * * * *  set -a; . ~/payments.env; payments sync >>~/payments.log 2>&1",
            ],
        ),
        (
            "export",
            &[
                "  payments export --format csv --status paid --since 2026-10-01 \\",
                "      --until 2026-10-31 --output october.csv",
                "  payments export --format ndjson --source paypro --status paid",
            ],
        ),
        (
            "status",
            &[
                "  payments status --db ledger.db --max-age 1h --quarantine-limit 50",
                "  PAYMENTS_DB=/var/lib/payments/ledger.db",
                "  */15 * * * *  payments status --max-age 1h >/dev/null || notify-ops",
            ],
        ),
        (
            "show",
            &[
                "  payments show paypro:PP123 --db ledger.db",
                "  payments show mkp:4711 --json",
            ],
        ),
        ("demo", &["  payments demo"]),
        (
            "sandbox",
            &[
                "  payments sandbox --seed 7 > sandbox.env &",
                "  sleep 1; set -a; . ./sandbox.env; set +a",
                "  payments sync --db sandbox.db && payments export --db sandbox.db",
            ],
        ),
        (
            "completions",
            &[
                "  dir=${XDG_DATA_HOME:-$HOME/.local/share}/bash-completion/completions",
                "  mkdir -p \"$dir\" && payments completions bash > \"$dir/payments\"",
                "  mkdir -p ~/.zfunc && payments completions zsh > ~/.zfunc/_payments",
                "  payments completions fish > ~/.config/fish/completions/payments.fish",
                "  payments completions powershell >> $PROFILE",
            ],
        ),
    ];
    for (command, lines) in cases {
        // 80 columns: a common terminal, on which clap wraps any longer line.
        for flag in ["--help", "-h"] {
            let output = help(&[command, flag], 80);
            assert_lines(&output, lines, &format!("`payments {command} {flag}`"));
        }
    }
}

/// Every line of every command's text after the options (examples, env-file and crontab lines)
/// comes out as written: none is joined with the next one or wrapped on an 80-column terminal.
#[test]
fn every_command_prints_its_after_help_line_for_line() {
    let root = payments_cli::command();
    for args in commands() {
        let definition = match args.first() {
            Some(name) => root.find_subcommand(name).expect("a subcommand"),
            None => &root,
        };
        let after_help = definition
            .get_after_help()
            .unwrap_or_else(|| {
                panic!(
                    "`payments {}` has no examples after its options",
                    args.join(" ")
                )
            })
            .to_string();
        let expected: Vec<&str> = after_help.lines().filter(|l| !l.is_empty()).collect();
        let mut help_args: Vec<&str> = args.iter().map(String::as_str).collect();
        help_args.push("--help");
        let output = help(&help_args, 80);
        assert_lines(
            &output,
            &expected,
            &format!("`payments {}`", help_args.join(" ")),
        );
    }
}

#[test]
fn the_top_level_help_says_what_payments_does_in_one_line_and_keeps_the_exit_codes() {
    let output = help(&["--help"], 80);
    assert_eq!(
        output.lines().next(),
        Some("Keeps one exact, up-to-date ledger of MijnKlantportaal and PayPro payments"),
        "{output}"
    );
    assert_eq!(
        output.lines().nth(1),
        Some(""),
        "the about is one line: {output}"
    );
    let description = env!("CARGO_PKG_DESCRIPTION");
    assert!(
        !output.contains(&description[..30]),
        "the about is the package description:\n{output}"
    );
    assert_lines(
        &output,
        &[
            "Exit codes: 0 done; 1 failed (nothing committed past the last good page);",
            "2 usage or configuration error; 3 done, but some records were quarantined",
            "Start with `payments demo`: it needs no key and no network.",
        ],
        "`payments --help`",
    );
    assert!(
        output.contains("  completions  "),
        "lists completions: {output}"
    );
}

#[test]
fn completions_print_a_script_that_completes_every_subcommand() {
    let bash = text(&run(payments().args(["completions", "bash"]), 0).stdout);
    assert!(
        bash.contains("complete -F _payments") || bash.contains("-F _payments payments"),
        "a bash completion for `payments`:\n{bash}"
    );
    for word in [
        "sync",
        "export",
        "status",
        "demo",
        "sandbox",
        "completions",
        "--max-duration",
        "--dialect",
        "excel-nl",
    ] {
        assert!(bash.contains(word), "the bash script never mentions {word}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let script = text(&run(payments().args(["completions", shell]), 0).stdout);
        for word in ["sync", "export", "status", "completions", "max-age"] {
            assert!(
                script.contains(word),
                "the {shell} script never mentions {word}"
            );
        }
    }
}

#[test]
fn completions_for_an_unknown_shell_are_a_usage_error() {
    let output = run(payments().args(["completions", "nosuch"]), 2);
    assert!(
        output.stdout.is_empty(),
        "no script: {}",
        text(&output.stdout)
    );
    let stderr = text(&output.stderr);
    assert!(stderr.contains("nosuch"), "{stderr}");
    assert!(
        stderr.contains("bash"),
        "names the shells it knows: {stderr}"
    );
}

/// `payments completions zsh | head`: the reader goes away before the script is written.
#[test]
fn completions_end_quietly_when_the_reader_goes_away() {
    let mut child = payments()
        .args(["completions", "zsh"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the payments binary runs");
    // The only read end of the pipe is closed before the child has built its script, so every
    // write it makes fails with a broken pipe.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr:\n{}",
        text(&output.stderr)
    );
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
}
