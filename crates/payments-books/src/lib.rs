//! Bank statements of a payment provider's balance, for bookkeeping packages.
//!
//! - [`Statement`] and [`Entry`]: one Amsterdam day of a balance's movements, as issued.
//! - [`StatementWriter`]: writes statements as MT940 (the Dutch banks' flavour, SWIFT
//!   character set) or CAMT.053.001.02 ([`Format`]), one statement at a time.
//!
//! Nothing here does I/O beyond the writer it is given, and no text from a provider can break
//! either format.
#![forbid(unsafe_code)]

mod format;
mod statement;

pub use format::{Format, StatementWriter};
pub use statement::{Entry, Statement};
