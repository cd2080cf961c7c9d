//! `payments check`: proves each configured key works (being written).

use crate::outcome::{CliError, Exit};

/// Checks each configured source's key.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {}

pub(crate) async fn run(_args: CheckArgs) -> Result<Exit, CliError> {
    Err(CliError::failed("not yet"))
}
