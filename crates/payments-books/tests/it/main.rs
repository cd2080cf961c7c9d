//! payments-books: the statement formats read back by independent parsers, and issuing.

mod formats;
mod issue;
