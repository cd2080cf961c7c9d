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
    fn from(error: payments_sync::StoreError) -> CliError {
        CliError::failed(error.to_string())
    }
}
