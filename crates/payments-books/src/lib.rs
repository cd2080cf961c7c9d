//! Bank statements of a payment provider's balance, for bookkeeping packages.
//!
//! - [`Statement`] and [`Entry`]: one Amsterdam day of a balance's movements, as issued.
//! - [`StatementWriter`]: writes statements as MT940 (the Dutch banks' flavour, SWIFT
//!   character set) or CAMT.053.001.02 ([`Format`]), one statement at a time.
//!
//! - [`issue`]: the statements of a ledger's days, issued once and given again as issued.
//! - [`balance_month`], [`reconcile`] and [`processor_month`]: a month of a ledger, and its
//!   balance reconciled with the provider's.
//!
//! Nothing here does I/O beyond the ledger and the writer it is given, and no text from a provider can break
//! either format.
#![forbid(unsafe_code)]

mod camt053;
mod format;
mod issue;
mod mt940;
mod report;
mod statement;
mod text;

pub use format::{Format, StatementWriter};
pub use issue::{
    BooksError, Issued, Request, amsterdam_day, default_account, digest, issue, month_days,
};
pub use report::{
    BalanceMonth, ProcessorMonth, Reconciliation, Tally, Unlisted, balance_month, processor_month,
    reconcile,
};
pub use statement::{Entry, Statement};
