//! PLACEHOLDER until the formats land: the writer's interface only.

use std::io::{self, Write};

use crate::Statement;

/// A statement file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// SWIFT MT940.
    Mt940,
    /// ISO 20022 CAMT.053.001.02.
    Camt053,
}

/// Writes statements one at a time.
#[derive(Debug)]
pub struct StatementWriter<W: Write> {
    out: W,
    format: Format,
}

impl<W: Write> StatementWriter<W> {
    /// A writer of `format` into `out`.
    pub fn new(format: Format, out: W) -> StatementWriter<W> {
        StatementWriter { out, format }
    }

    /// Writes one statement.
    pub fn write(&mut self, statement: &Statement) -> io::Result<()> {
        let _ = (statement, self.format);
        unimplemented!()
    }

    /// Ends the file and gives the output back.
    pub fn finish(self) -> io::Result<W> {
        Ok(self.out)
    }
}
