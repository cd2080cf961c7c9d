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
