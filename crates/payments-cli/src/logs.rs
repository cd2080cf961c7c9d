//! Log lines on stderr that do not tear the progress display: while bars are drawn, each line is
//! printed above them (the bars are cleared, the line written, the bars drawn again).

use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

use indicatif::MultiProgress;

/// The progress display log lines go through, while there is one.
static DISPLAY: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Sends log lines through `display` from now on (`None`: straight to stderr again).
pub(crate) fn through(display: Option<MultiProgress>) {
    *DISPLAY.lock().unwrap_or_else(PoisonError::into_inner) = display;
}

/// The writer the log subscriber makes for each event: it collects the event's bytes and writes
/// them in one piece when dropped.
#[derive(Default)]
pub(crate) struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let write = || {
            let mut stderr = io::stderr().lock();
            // A log line that cannot be written has nowhere else to go.
            let _ = stderr.write_all(&self.0).and_then(|()| stderr.flush());
        };
        match &*DISPLAY.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(display) => display.suspend(write),
            None => write(),
        }
    }
}
