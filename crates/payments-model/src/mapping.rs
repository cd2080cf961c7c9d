//! Turning a page of raw provider records into payments, one record at a time, so that one bad
//! record is set aside (with its raw JSON and the reason) while the rest of the page is kept.
//!
//! - [`map_records`]/[`decode_records`]: record by record, each bad one a [`Rejected`];
//! - [`PageText`]: a page body whose bytes are not all valid UTF-8, read anyway, so that only
//!   the records holding the bad bytes are set aside (with their bytes escaped) and the rest of
//!   the page is kept;
//! - [`tolerant`]: readers for the envelope and amount fields that real Laravel and PHP APIs
//!   write in more than one way.

use std::borrow::{Borrow, Cow};
use std::fmt::Write as _;
use std::ops::Range;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::Payment;

/// Why one provider record could not become a [`Payment`]: names the record and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record `{record}`: field `{field}`: {problem}")]
pub struct MapError {
    /// The provider's id of the record, or `<no id>` when it has none.
    pub record: String,
    /// The field at fault, as the provider names it (`amount`, `createdAt`, `pay_method.id`).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl MapError {
    /// A mapping error of `field` in `record`.
    pub fn new(record: &str, field: &str, problem: impl Into<String>) -> MapError {
        MapError {
            record: record.to_owned(),
            field: field.to_owned(),
            problem: problem.into(),
        }
    }
}

/// A provider record set aside because it could not be mapped: kept whole, never dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The provider's id of the record, when it could be read.
    pub source_id: Option<String>,
    /// Why it was set aside (a [`MapError`] in words).
    pub reason: String,
    /// The record exactly as the provider sent it. When its bytes were not valid UTF-8 (see
    /// [`PageText`]), each invalid byte is written `\xNN` (a sequence no JSON text holds), so
    /// the bytes can still be told apart and recovered.
    pub raw: String,
}

/// The payments of a page that mapped, and the records that did not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapped {
    /// Mapped payments, in the provider's order.
    pub payments: Vec<Payment>,
    /// Records set aside, in the provider's order.
    pub rejected: Vec<Rejected>,
}

/// Decodes each raw record as the wire type `W` and maps it into a [`Payment`] with `map`.
///
/// A record that does not decode (a wrong type, a missing required field) or does not map
/// (an inexact amount, a timestamp without offset) becomes a [`Rejected`] naming the record
/// and the field; the others are mapped. Never panics on any input.
pub fn map_records<R, W, F>(records: &[R], map: F) -> Mapped
where
    R: Borrow<RawValue>,
    W: DeserializeOwned,
    F: FnMut(W) -> Result<Payment, MapError>,
{
    let (payments, rejected) = decode_records(records, map);
    Mapped { payments, rejected }
}

/// The fast path of a page whose records were decoded straight into their wire structs: maps
/// them all, or gives `None` as soon as one fails, so that the caller maps the page again
/// record by record with [`map_records`] and keeps each bad record whole. A clean page (the
/// common case) is thus decoded once, not twice.
pub fn map_all<W, F>(records: Vec<W>, map: F) -> Option<Vec<Payment>>
where
    F: FnMut(W) -> Result<Payment, MapError>,
{
    let mut map = map;
    let mut payments = Vec::with_capacity(records.len());
    for record in records {
        payments.push(map(record).ok()?);
    }
    Some(payments)
}

/// [`map_records`] for any output: decodes each raw record as `W`, converts it with `map`,
/// and sets aside every record that fails either step, whole, with the reason.
pub fn decode_records<R, W, T, F>(records: &[R], mut map: F) -> (Vec<T>, Vec<Rejected>)
where
    R: Borrow<RawValue>,
    W: DeserializeOwned,
    F: FnMut(W) -> Result<T, MapError>,
{
    let mut mapped = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    for raw in records {
        match decode_one(raw.borrow(), &mut map) {
            Ok(item) => mapped.push(item),
            Err(set_aside) => rejected.push(set_aside),
        }
    }
    (mapped, rejected)
}

/// Decodes and maps one raw record, or sets it aside whole with the reason.
fn decode_one<W, T, F>(raw: &RawValue, map: &mut F) -> Result<T, Rejected>
where
    W: DeserializeOwned,
    F: FnMut(W) -> Result<T, MapError>,
{
    serde_json::from_str::<W>(raw.get())
        .map_err(|_| decode_error::<W>(raw.get()))
        .and_then(map)
        .map_err(|err| Rejected {
            source_id: record_id(raw.get()),
            reason: err.to_string(),
            raw: raw.get().to_owned(),
        })
}

/// The `id` of a raw record, as text, when it has one.
pub fn record_id(raw: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: Option<serde_json::Value>,
    }
    match serde_json::from_str::<IdOnly>(raw).ok()?.id? {
        serde_json::Value::String(id) => Some(id),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Decodes again, slowly, only to name the field that failed (the fast path keeps no path).
fn decode_error<W: DeserializeOwned>(raw: &str) -> MapError {
    let record = record_id(raw).unwrap_or_else(|| "<no id>".to_owned());
    let deserializer = &mut serde_json::Deserializer::from_str(raw);
    match serde_path_to_error::deserialize::<_, W>(deserializer) {
        Ok(_) => MapError::new(&record, "<record>", "decodes only on a second try"),
        Err(err) => {
            let path = err.path().to_string();
            let problem = err.into_inner().to_string();
            // serde reports a missing field at its parent; name the field itself.
            let missing = problem
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next());
            let field = match (path.as_str(), missing) {
                (".", Some(name)) => name.to_owned(),
                (".", None) => "<record>".to_owned(),
                (parent, Some(name)) => format!("{parent}.{name}"),
                (path, None) => path.to_owned(),
            };
            MapError::new(&record, &field, problem)
        }
    }
}

/// The text of a page body, read even when some of its bytes are not valid UTF-8, so that one
/// record holding such bytes is set aside and the rest of the page is kept.
///
/// A body that is valid UTF-8 (the common case) is borrowed as it is. Otherwise each run of
/// invalid bytes is read as U+FFFD, so that the envelope can still be decoded, and every record
/// that held one is set aside by [`PageText::decode_records`]: its reason names the record (when
/// its id is readable), the field and the byte offset in the body, and its [`Rejected::raw`] keeps
/// its bytes with each invalid one written `\xNN`. Invalid bytes outside the records (in the
/// envelope) are left to the caller: [`PageText::is_damaged`] tells whether a value it needs,
/// such as a next-page link, held some.
///
/// ```
/// use payments_model::{MapError, PageText};
/// use serde_json::value::RawValue;
///
/// #[derive(serde::Deserialize)]
/// struct Envelope<'a> {
///     #[serde(borrow)]
///     data: Vec<&'a RawValue>,
/// }
/// #[derive(serde::Deserialize)]
/// struct Record {
///     id: String,
///     name: String,
/// }
///
/// let body = b"{\"data\": [{\"id\": \"r1\", \"name\": \"Jos\"}, {\"id\": \"r2\", \"name\": \"Ren\xE9\"}]}";
/// let text = PageText::new(body);
/// let page: Envelope<'_> = text.parse()?;
/// let (names, rejected) = text.decode_records(&page.data, |r: Record| Ok::<_, MapError>(r.name));
/// assert_eq!(names, ["Jos"]);
/// assert_eq!(rejected[0].source_id.as_deref(), Some("r2"));
/// assert_eq!(
///     rejected[0].reason,
///     "record `r2`: field `name`: byte 0xE9 at offset 64 of the page body is not valid UTF-8"
/// );
/// assert_eq!(rejected[0].raw, r#"{"id": "r2", "name": "Ren\xE9"}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PageText<'a> {
    body: &'a [u8],
    text: Cow<'a, str>,
    /// Each run of invalid bytes, in order.
    repairs: Vec<Repair>,
}

/// One run of invalid bytes: how long it is in the body, and where its U+FFFD is in the text.
#[derive(Debug, Clone, Copy)]
struct Repair {
    body_len: usize,
    text_at: usize,
}

/// The length of U+FFFD in UTF-8, which stands in the text for each run of invalid bytes.
const REPLACEMENT_LEN: usize = '\u{FFFD}'.len_utf8();

impl<'a> PageText<'a> {
    /// The text of `body`: borrowed when it is valid UTF-8, repaired otherwise.
    pub fn new(body: &'a [u8]) -> PageText<'a> {
        if let Ok(text) = std::str::from_utf8(body) {
            return PageText {
                body,
                text: Cow::Borrowed(text),
                repairs: Vec::new(),
            };
        }
        let mut text = String::with_capacity(body.len() + 16);
        let mut repairs = Vec::new();
        for chunk in body.utf8_chunks() {
            text.push_str(chunk.valid());
            let invalid = chunk.invalid();
            if !invalid.is_empty() {
                repairs.push(Repair {
                    body_len: invalid.len(),
                    text_at: text.len(),
                });
                text.push('\u{FFFD}');
            }
        }
        PageText {
            body,
            text: Cow::Owned(text),
            repairs,
        }
    }

    /// The text, with U+FFFD where the body's bytes were not valid UTF-8.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether every byte of the body was valid UTF-8.
    pub fn is_valid_utf8(&self) -> bool {
        self.repairs.is_empty()
    }

    /// Decodes the text as `T`, typically a page envelope whose records are `&RawValue`s to hand
    /// to [`PageText::decode_records`].
    pub fn parse<'t, T: Deserialize<'t>>(&'t self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.text)
    }

    /// Whether `value`, read out of this text, may hold bytes that were not valid UTF-8 (it then
    /// holds U+FFFD where they were). A caller must not act on such a value (a next-page link).
    pub fn is_damaged(&self, value: &str) -> bool {
        !self.repairs.is_empty() && value.contains('\u{FFFD}')
    }

    /// [`decode_records`] for records read out of this text: a record that held bytes that were
    /// not valid UTF-8 is set aside (see the type's docs); the others are decoded and mapped.
    pub fn decode_records<'t, W, T, F>(
        &'t self,
        records: &[&'t RawValue],
        mut map: F,
    ) -> (Vec<T>, Vec<Rejected>)
    where
        W: DeserializeOwned,
        F: FnMut(W) -> Result<T, MapError>,
    {
        if self.repairs.is_empty() {
            return decode_records(records, map);
        }
        let mut mapped = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        for raw in records {
            let span = self.span_of(raw);
            let damaged = self
                .repairs
                .iter()
                .filter(|r| span.contains(&r.text_at))
                .count();
            let lost = span.is_empty() && raw.get().contains('\u{FFFD}');
            if damaged > 0 || lost {
                rejected.push(self.set_aside(raw, span));
                continue;
            }
            match decode_one(raw, &mut map) {
                Ok(item) => mapped.push(item),
                Err(set_aside) => rejected.push(set_aside),
            }
        }
        (mapped, rejected)
    }

    /// [`PageText::decode_records`] into payments.
    pub fn map_records<'t, W, F>(&'t self, records: &[&'t RawValue], map: F) -> Mapped
    where
        W: DeserializeOwned,
        F: FnMut(W) -> Result<Payment, MapError>,
    {
        let (payments, rejected) = self.decode_records(records, map);
        Mapped { payments, rejected }
    }

    /// Where `raw` is in the text: found by its address when it was borrowed from this text (as
    /// [`PageText::parse`] does), else by searching; empty when it is not in the text at all.
    fn span_of(&self, raw: &RawValue) -> Range<usize> {
        let text = self.text.as_ref();
        let (base, at, len) = (
            text.as_ptr() as usize,
            raw.get().as_ptr() as usize,
            raw.get().len(),
        );
        if at >= base && at - base <= text.len() && len <= text.len() - (at - base) {
            return at - base..at - base + len;
        }
        match text.find(raw.get()) {
            Some(start) => start..start + len,
            None => 0..0,
        }
    }

    /// Where a position of the text is in the body.
    fn body_offset(&self, text_at: usize) -> usize {
        let mut offset = text_at;
        // A record starts and ends on whole characters, so each replacement before it is passed
        // whole; each run of invalid bytes is 1 to 3 bytes long.
        for repair in self.repairs.iter().take_while(|r| r.text_at < text_at) {
            offset -= REPLACEMENT_LEN - repair.body_len;
        }
        offset
    }

    /// The record at `span` of the text, set aside with its bytes, each invalid one as `\xNN`.
    fn set_aside(&self, raw: &RawValue, span: Range<usize>) -> Rejected {
        let record = record_id(raw.get()).filter(|id| !id.contains('\u{FFFD}'));
        let name = record.as_deref().unwrap_or("<no id>");
        if span.is_empty() {
            let problem =
                "holds bytes that were not valid UTF-8 but could not be found in the page body";
            let reason = MapError::new(name, "<record>", problem).to_string();
            return Rejected {
                source_id: record,
                reason,
                raw: raw.get().to_owned(),
            };
        }
        let (start, end) = (self.body_offset(span.start), self.body_offset(span.end));
        let bytes = &self.body[start..end];
        // The bytes with each invalid one as `\xNN`, and as a control character, which JSON
        // refuses inside a string exactly where it stands, so the decoder names the field.
        let mut escaped = String::with_capacity(bytes.len() + 8);
        let mut marked = String::with_capacity(bytes.len());
        let mut first = None;
        let mut invalid = 0;
        let mut at = start;
        for chunk in bytes.utf8_chunks() {
            escaped.push_str(chunk.valid());
            marked.push_str(chunk.valid());
            at += chunk.valid().len();
            for byte in chunk.invalid() {
                first.get_or_insert((at, *byte));
                let _ = write!(escaped, "\\x{byte:02X}");
                marked.push('\u{1}');
                invalid += 1;
                at += 1;
            }
        }
        let field = field_of_control_character(&marked);
        let problem = match first {
            Some((offset, byte)) => {
                let more = match invalid - 1 {
                    0 => String::new(),
                    1 => " (and 1 more byte)".to_owned(),
                    n => format!(" (and {n} more bytes)"),
                };
                format!(
                    "byte 0x{byte:02X} at offset {offset} of the page body is not valid UTF-8{more}"
                )
            }
            None => "holds bytes that are not valid UTF-8".to_owned(),
        };
        let reason = MapError::new(name, &field, problem).to_string();
        Rejected {
            source_id: record,
            reason,
            raw: escaped,
        }
    }
}

/// The field of a record's JSON text that holds its first control character, as the decoder
/// names it (`payersName`, `pay_method.name`), or `<record>`.
fn field_of_control_character(text: &str) -> String {
    let deserializer = &mut serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, serde_json::Value>(deserializer) {
        Ok(_) => "<record>".to_owned(),
        Err(err) => match err.path().to_string() {
            path if path == "." || path.is_empty() => "<record>".to_owned(),
            path => path,
        },
    }
}

/// Readers for fields that real Laravel and PHP APIs write in more than one way, for use with
/// `#[serde(deserialize_with = "…")]` on wire types.
///
/// Fields the client does not need are read leniently (an unexpected value is `None`, never an
/// error that would fail a page); fields it does need accept each unambiguous form and refuse
/// the rest, so that the record is set aside naming the field.
pub mod tolerant {
    use std::fmt;

    use serde::Deserialize;
    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde_json::value::RawValue;

    /// A list that may be `null` (`data: null` on an empty page) read as empty. A missing field
    /// is still an error: that is not the envelope.
    pub fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
    }

    /// A count or page number the client does not need (`per_page`, `current_page`, `count`): a
    /// number, a string of digits (`"15"`), or `None` for anything else.
    pub fn count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        Ok(match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    }

    /// Text the client does not need (`path`, `first_page_url`, `type`): a string, or `None` for
    /// anything else.
    pub fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
        Ok(match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(s) => Some(s),
            _ => None,
        })
    }

    /// A flag the client does not need (`reusable`): `true`/`false`, `1`/`0`, `"1"`/`"0"`,
    /// `"true"`/`"false"`, or `None` for anything else.
    pub fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(match value {
            serde_json::Value::Bool(b) => Some(b),
            serde_json::Value::Number(n) if n.as_u64() == Some(1) => Some(true),
            serde_json::Value::Number(n) if n.as_u64() == Some(0) => Some(false),
            serde_json::Value::String(s) => match s.trim() {
                "1" | "true" => Some(true),
                "0" | "false" => Some(false),
                _ => None,
            },
            _ => None,
        })
    }

    /// An object that PHP writes as `[]` when it is empty (`_links: []`): an object, or the
    /// default for `[]` or `null`. A non-empty list or any other value is an error.
    pub fn empty_list_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de> + Default,
    {
        struct ObjectOrEmpty<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for ObjectOrEmpty<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object, or an empty list")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
                match seq.next_element::<IgnoredAny>()? {
                    None => Ok(T::default()),
                    Some(_) => Err(de::Error::invalid_type(de::Unexpected::Seq, &self)),
                }
            }
            fn visit_unit<E>(self) -> Result<T, E> {
                Ok(T::default())
            }
            fn visit_none<E>(self) -> Result<T, E> {
                Ok(T::default())
            }
        }
        deserializer.deserialize_any(ObjectOrEmpty(std::marker::PhantomData))
    }

    /// A link the client follows (a next page): a string, or `{"href": "…"}` as HAL writes it.
    /// `null`, `false` and an empty string mean there is none. Anything else is an error, so
    /// that a page whose next link cannot be read is never taken for the last one.
    pub fn link<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Link {
            Text(String),
            Href { href: Option<String> },
            Flag(bool),
        }
        let link = Option::<Link>::deserialize(deserializer).map_err(|_| {
            de::Error::custom(
                "the next-page link is not a URL, `{\"href\": URL}`, `null` or `false`",
            )
        })?;
        Ok(match link {
            Some(Link::Text(url)) | Some(Link::Href { href: Some(url) }) => {
                Some(url.trim().to_owned()).filter(|url| !url.is_empty())
            }
            Some(Link::Flag(true)) => {
                return Err(de::Error::custom("the next-page link is `true`, not a URL"));
            }
            Some(Link::Href { href: None } | Link::Flag(false)) | None => None,
        })
    }

    /// An amount's exact text: the contents of a JSON string (`"12.95"`), or the literal digits
    /// of a JSON number (`12.95`), read from the JSON text itself and never through a float.
    ///
    /// Reads JSON text only (`serde_json::from_str`/`from_slice`), as it borrows the number's
    /// literal from the input.
    pub fn literal<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        literal_text(raw.get()).map_err(de::Error::custom)
    }

    fn literal_text(raw: &str) -> Result<String, String> {
        match raw.as_bytes().first() {
            Some(b'"') if !raw.contains('\\') && raw.len() >= 2 => {
                Ok(raw[1..raw.len() - 1].to_owned())
            }
            Some(b'"') => serde_json::from_str::<String>(raw).map_err(|e| e.to_string()),
            Some(b'-' | b'0'..=b'9') => Ok(raw.to_owned()),
            _ => Err(format!(
                "`{raw}` is not an amount; send it as a decimal string like \"12.95\" or a number like 12.95"
            )),
        }
    }

    /// Whole minor units (cents): a JSON integer, or a string of digits with an optional `-`
    /// (`"1295"`, spaces around it allowed). A fraction, an exponent or any other text is
    /// refused: it is not clear which amount it means.
    pub fn minor_units<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        deserializer.deserialize_any(MinorUnits)
    }

    /// [`minor_units`] for a field that may be `null` or missing (use with `#[serde(default)]`).
    pub fn optional_minor_units<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<i64>, D::Error> {
        struct Optional;
        impl<'de> Visitor<'de> for Optional {
            type Value = Option<i64>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                MinorUnits.expecting(f)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                minor_units(d).map(Some)
            }
        }
        deserializer.deserialize_option(Optional)
    }

    struct MinorUnits;

    impl<'de> Visitor<'de> for MinorUnits {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number of minor units (cents), like 1295 or \"1295\"")
        }
        fn visit_i64<E>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large to hold exactly")))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<i64, E> {
            Err(E::custom(
                "a number with a fraction or an exponent is not a whole number of minor units (cents), which the provider documents (like 1295)",
            ))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            let digits = v.trim();
            let unsigned = digits.strip_prefix('-').unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return Err(E::custom(format!(
                    "`{v}` is not a whole number of minor units (cents), which the provider documents (digits only, like \"1295\")"
                )));
            }
            digits
                .parse()
                .map_err(|_| E::custom(format!("`{v}` is too large to hold exactly")))
        }
    }
}
