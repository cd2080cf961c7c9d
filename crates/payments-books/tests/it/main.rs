//! Integration tests of payments-books: the statement file formats, and issuing statements.

mod formats;
mod issue;
