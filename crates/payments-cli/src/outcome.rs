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

impl From<payments_sync::StoreError> for CliError {
    /// A ledger that is not one, or from a newer version, is a configuration error (exit 2);
    /// another sync holding the lock, a corrupt record or a failing disk fail the work (exit 1).
    fn from(error: payments_sync::StoreError) -> CliError {
        use payments_sync::StoreError;
        match error {
            StoreError::NotALedger { .. } | StoreError::NewerSchema { .. } => CliError::config(
                format!("{error}; check that --db (or PAYMENTS_DB) names your payments ledger"),
            ),
            _ => CliError::failed(error.to_string()),
        }
    }
}
