//! Exit codes and the one-sentence errors behind them.

/// The exit codes of DESIGN.md's contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Done.
    Done = 0,
    /// Failed; nothing was committed past the last good page.
    Failed = 1,
    /// A usage or configuration error.
    Config = 2,
    /// Done, but something was set aside: records quarantined, or work put off to a later run
    /// (the change feed not read, payments it names still to read).
    Quarantined = 3,
    /// Stopped by SIGINT (128 + 2) at a page boundary; the next run resumes.
    Interrupted = 130,
    /// Stopped by SIGTERM (128 + 15) at a page boundary; the next run resumes.
    Terminated = 143,
}

impl Exit {
    /// The exit of a process stopped at a page boundary: 130 for an interrupt, 143 otherwise.
    pub(crate) fn stopped_by(reason: payments_sync::StopReason) -> Exit {
        match reason {
            payments_sync::StopReason::Interrupt => Exit::Interrupted,
            _ => Exit::Terminated,
        }
    }
}

/// An error to print (one sentence saying what to do) and the exit code it means.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) exit: Exit,
    pub(crate) message: String,
}

impl CliError {
    /// Exit 2: the user must fix a flag, a variable or a file.
    pub(crate) fn config(message: impl Into<String>) -> CliError {
        CliError {
            exit: Exit::Config,
            message: message.into(),
        }
    }

    /// Exit 1: the work failed.
    pub(crate) fn failed(message: impl Into<String>) -> CliError {
        CliError {
            exit: Exit::Failed,
            message: message.into(),
        }
    }
}

impl CliError {
    /// A ledger that is not one, is from a newer version or cannot be written is a
    /// configuration error (exit 2); another sync holding the lock, a corrupt record, a
    /// vanished file or a failing disk fail the work (exit 1).
    pub(crate) fn from_store(error: &payments_sync::StoreError) -> CliError {
        use payments_sync::StoreError;
        match error {
            StoreError::NotALedger { .. }
            | StoreError::NewerSchema { .. }
            | StoreError::ReadOnly { .. } => CliError::config(format!(
                "{error}; check that --db (or PAYMENTS_DB) names your payments ledger, writable by this user"
            )),
            _ => CliError::failed(error.to_string()),
        }
    }
}

impl From<payments_sync::StoreError> for CliError {
    fn from(error: payments_sync::StoreError) -> CliError {
        CliError::from_store(&error)
    }
}

/// Writes a whole report to stdout. A reader that goes away early (`payments status | head -1`)
/// is not an error: the command ends quietly.
pub(crate) fn print_report(report: &str, what: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(report.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::failed(format!("cannot write {what}: {e}")))
        }
        _ => Ok(()),
    }
}

/// `text` with every control character written as an escape (`\u{1b}` as `\x1b`, U+202E as
/// `\u{202e}`), so that data from a provider (a payer name, an error body) cannot move the
/// cursor, clear the screen, recolour a terminal, reorder what is shown or hide part of it, and
/// never spans two lines. Everything printed for a person goes through it: reports on stdout,
/// errors, and each field of a log line (`logs::EscapedFields`).
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if escaped(c) && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if escaped(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether `printable` writes `c` as an escape: the C0 and C1 controls and DEL, which a terminal
/// obeys; the bidirectional controls, which reorder the text around them (an id or amount read
/// backwards); the line and paragraph separators, which break a line; and the invisible format
/// characters that join or split words without showing (a zero-width space inside `paid`).
/// Format characters that text needs are kept: the zero-width (non-)joiners (U+200C, U+200D) of
/// Persian, Indic scripts and emoji sequences, the soft hyphen, variation selectors and tags.
fn escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Bidirectional controls: the Arabic letter mark, the left-to-right and
            // right-to-left marks, embeddings, overrides and isolates.
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                // Line and paragraph separators.
                | '\u{2028}'
                | '\u{2029}'
                // Invisible: zero-width space, word joiner, invisible operators, zero-width
                // no-break space (the byte order mark), interlinear annotation controls.
                | '\u{200b}'
                | '\u{2060}'..='\u{2064}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_from_data_are_shown_not_obeyed() {
        assert_eq!(printable("Jan Jansen"), "Jan Jansen");
        assert_eq!(
            printable("\u{1b}[2J\u{1b}[31mpaid"),
            "\\x1b[2J\\x1b[31mpaid"
        );
        assert_eq!(printable("a\nb\rc\u{7f}\u{9b}"), "a\\nb\\rc\\x7f\\x9b");
        assert_eq!(printable("Renée 🙂"), "Renée 🙂");
    }

    #[test]
    fn text_that_reorders_hides_or_breaks_a_line_is_shown_escaped() {
        // Bidirectional controls: `\u{202e}` would show `gnp.exe` as `exe.png`.
        assert_eq!(printable("file\u{202e}gnp.exe"), "file\\u{202e}gnp.exe");
        for c in [
            '\u{061c}', '\u{200e}', '\u{200f}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}',
            '\u{202e}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        ] {
            assert_eq!(
                printable(&format!("a{c}b")),
                format!("a\\u{{{:x}}}b", c as u32)
            );
        }
        // Line breaks of every kind: what is printed stays on one line.
        assert_eq!(
            printable("one\r\ntwo\u{85}three\u{2028}four\u{2029}five"),
            "one\\r\\ntwo\\x85three\\u{2028}four\\u{2029}five"
        );
        // Invisible characters that split or join a word without showing.
        assert_eq!(
            printable("pa\u{200b}id\u{2060}\u{feff}"),
            "pa\\u{200b}id\\u{2060}\\u{feff}"
        );
        // ESC, CSI, OSC (set-title) and BEL.
        assert_eq!(
            printable("\u{1b}]0;title\u{7}\u{1b}[2J\u{1b}"),
            "\\x1b]0;title\\x07\\x1b[2J\\x1b"
        );
        // Text as people write it is left alone: accents, other scripts, the joiners of Persian
        // and of emoji sequences, flags, variation selectors, the soft hyphen.
        for text in [
            "Zoë Ødegård-Çelik",
            "Šťastný Łukasz",
            "Ἀθῆναι",
            "مدرسه‌ها",
            "שלום עולם",
            "東京 ﾃｽﾄ",
            "👨\u{200d}👩\u{200d}👧",
            "🇳🇱 🏴\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}",
            "❤\u{fe0f}",
            "Rechts\u{ad}anwalt",
            "a\u{200c}b",
            "€ 12,50 — “quoted” ½",
        ] {
            assert_eq!(printable(text), text);
            assert!(matches!(printable(text), std::borrow::Cow::Borrowed(_)));
        }
    }
}
