//! Turning a page of raw provider records into payments, one record at a time, so that one bad
//! record is set aside (with its raw JSON and the reason) while the rest of the page is kept.

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
    /// The record exactly as the provider sent it.
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
pub fn map_records<W, F>(records: &[Box<RawValue>], map: F) -> Mapped
where
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
pub fn decode_records<W, T, F>(records: &[Box<RawValue>], mut map: F) -> (Vec<T>, Vec<Rejected>)
where
    W: DeserializeOwned,
    F: FnMut(W) -> Result<T, MapError>,
{
    let mut mapped = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    for raw in records {
        let outcome = serde_json::from_str::<W>(raw.get())
            .map_err(|_| decode_error::<W>(raw.get()))
            .and_then(&mut map);
        match outcome {
            Ok(item) => mapped.push(item),
            Err(err) => rejected.push(Rejected {
                source_id: record_id(raw.get()),
                reason: err.to_string(),
                raw: raw.get().to_owned(),
            }),
        }
    }
    (mapped, rejected)
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
