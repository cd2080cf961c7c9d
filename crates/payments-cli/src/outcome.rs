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
    /// Done, but some records were quarantined.
    Quarantined = 3,
    /// Stopped by SIGINT (128 + 2) at a page boundary; the next run resumes.
    Interrupted = 130,
    /// Stopped by SIGTERM (128 + 15) at a page boundary; the next run resumes.
    Terminated = 143,
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

/// `text` with every control character written as an escape (`\u{1b}` as `\x1b`), so that data
/// from a provider (a payer name, an error body) cannot move the cursor, clear the screen or
/// recolour a terminal. Everything printed for a person goes through it.
pub(crate) fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) < 0x100 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
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
}
