//! `payments quarantine`: lists quarantined records (being written).

use crate::outcome::{CliError, Exit};

/// Lists quarantined records.
#[derive(Debug, clap::Args)]
pub(crate) struct QuarantineArgs {}

pub(crate) async fn run(_args: QuarantineArgs) -> Result<Exit, CliError> {
    Err(CliError::failed("not yet"))
}
