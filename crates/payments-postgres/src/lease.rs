//! Leases: a worker's hold on one source of one account while it syncs it.

use crate::SourceOptions;

/// One source of one account, held by one worker until the lease expires (renewed while it
/// works). Its store commits only while the lease is held.
#[derive(Clone, Debug)]
pub struct Lease {
    /// The account's id.
    pub account_id: i64,
    /// The account's name.
    pub account_name: String,
    /// The source (`mkp`, `paypro`).
    pub source_name: String,
    /// The worker that holds it.
    pub worker: String,
    /// The run row this lease's run completes.
    pub run_seq: i64,
    /// How the source is synced.
    pub options: SourceOptions,
    /// The sealed API key.
    #[allow(dead_code)]
    pub(crate) sealed_key: Vec<u8>,
}
