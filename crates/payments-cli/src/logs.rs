//! Log lines on stderr that do not tear the progress display: while bars are drawn, each line is
//! printed above them (the bars are cleared, the line written, the bars drawn again). Each line's
//! message and field values go through `outcome::printable` (`EscapedFields`), so that provider
//! text in a warning (a status word, an error body) is shown, never obeyed by the terminal.

use std::fmt;
use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

use indicatif::MultiProgress;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{FormatFields, Writer};

use crate::outcome::printable;

/// The progress display log lines go through, while there is one.
static DISPLAY: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Whether a progress display is drawn (log lines then pass above it).
pub(crate) fn drawing() -> bool {
    DISPLAY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some()
}

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

/// The log subscriber's field formatter: the layout of `tracing_subscriber`'s default one (the
/// message, then `name=value` pairs, the names in italics on a colour terminal), but every value
/// and the message written through `printable`. Escaping here rather than in `LogLine` keeps the
/// formatter's own colour codes (the level, the names) while the data's are shown as text; and a
/// newline inside a value is escaped, so that one event is one line.
pub(crate) struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes one event's (or span's) fields for `EscapedFields`.
struct EscapingVisitor<'writer> {
    writer: Writer<'writer>,
    is_empty: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    /// Writes one field whose value, unescaped, is `value`.
    fn write(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let pad = if std::mem::replace(&mut self.is_empty, false) {
            ""
        } else {
            " "
        };
        let value = printable(value);
        self.result = match field.name() {
            "message" => write!(self.writer, "{pad}{value}"),
            name => {
                let name = printable(name.strip_prefix("r#").unwrap_or(name));
                if self.writer.has_ansi_escapes() {
                    // Italic name, dimmed `=`: as `tracing_subscriber`'s default fields.
                    write!(
                        self.writer,
                        "{pad}\u{1b}[3m{name}\u{1b}[0m\u{1b}[2m=\u{1b}[0m{value}"
                    )
                } else {
                    write!(self.writer, "{pad}{name}={value}")
                }
            }
        };
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, value);
        } else {
            // Quoted, as the default formatter shows a string field.
            self.write(field, &format!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        use std::fmt::Write as _;
        let mut text = value.to_string();
        if let Some(source) = value.source() {
            // As the default formatter: the error, then the chain of its sources.
            let name = field.name().strip_prefix("r#").unwrap_or(field.name());
            let _ = write!(text, " {name}.sources=[");
            let mut next = Some(source);
            let mut first = true;
            while let Some(error) = next {
                let _ = write!(text, "{}{error}", if first { "" } else { ", " });
                first = false;
                next = error.source();
            }
            text.push(']');
        }
        self.write(field, &text);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, &format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::EscapedFields;

    /// The lines `log` writes through a subscriber with `EscapedFields` (`ansi`: as on a colour
    /// terminal).
    fn logged(ansi: bool, log: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(EscapedFields)
            .with_writer(move || writer.clone())
            .with_ansi(ansi)
            .with_target(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[derive(Debug)]
    struct Failure(&'static str, Option<Box<Failure>>);
    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    const HOSTILE: &str = "\u{1b}]0;owned\u{7}\u{1b}[2Jbad\r\nINFO forged line\u{202e}";
    const SHOWN: &str = "\\x1b]0;owned\\x07\\x1b[2Jbad\\r\\nINFO forged line\\u{202e}";

    #[test]
    fn each_field_and_the_message_are_escaped_and_one_event_is_one_line() {
        let word = HOSTILE.to_owned();
        let error = Failure(HOSTILE, Some(Box::new(Failure("cause\u{1b}[31m", None))));
        let line = logged(false, || {
            tracing::warn!(%word, debug = ?word, text = word.as_str(), count = 3, "msg {HOSTILE}");
            tracing::warn!(
                error = &error as &(dyn std::error::Error + 'static),
                "failed"
            );
            let span = tracing::warn_span!("run", source = %HOSTILE);
            let _entered = span.enter();
            tracing::warn!("inside");
        });
        assert_eq!(line.lines().count(), 3, "{line}");
        assert!(
            !line
                .chars()
                .any(|c| (c < ' ' && c != '\n') || c == '\u{7f}' || c == '\u{202e}'),
            "{line:?}"
        );
        assert!(
            line.contains(&format!("msg {SHOWN} word={SHOWN} debug=")),
            "{line}"
        );
        assert!(line.contains(" count=3"), "{line}");
        assert!(
            line.contains(&format!(
                "failed error={SHOWN} error.sources=[cause\\x1b[31m]"
            )),
            "{line}"
        );
        assert!(
            line.contains(&format!("run{{source={SHOWN}}}: inside")),
            "{line}"
        );
    }

    #[test]
    fn on_a_colour_terminal_the_formatters_colours_stay_and_the_datas_are_shown() {
        let line = logged(
            true,
            || tracing::warn!(word = %HOSTILE, "unknown {HOSTILE}"),
        );
        assert_eq!(line.lines().count(), 1, "{line:?}");
        // The level's colour and the field name's italics are the formatter's own.
        assert!(line.contains("\u{1b}[33m WARN\u{1b}[0m"), "{line:?}");
        assert!(
            line.contains(&format!(
                "unknown {SHOWN} \u{1b}[3mword\u{1b}[0m\u{1b}[2m=\u{1b}[0m{SHOWN}"
            )),
            "{line:?}"
        );
        // None of the data's.
        assert!(!line.contains("\u{1b}]"), "{line:?}");
        assert!(!line.contains("\u{1b}[2J"), "{line:?}");
        assert!(!line.contains('\u{7}') && !line.contains('\r'), "{line:?}");
    }
}
