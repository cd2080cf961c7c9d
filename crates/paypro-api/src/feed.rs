//! PayPro's change feeds: events, refunds and chargebacks, mapped.
//!
//! Refunds and chargebacks stay PayPro-level records (the unified ledger has no such record):
//! exact [`Money`], the provider's offsets kept, the state word as sent. An event's payload is
//! mapped by its own `type` (a payment, a refund, a chargeback, a payout); a payload of another
//! type (a customer), a payout that cannot be mapped, or an event type this crate does not know
//! is kept as [`EventPayload::Other`], never an error.

use payments_model::chrono::{DateTime, FixedOffset};
use payments_model::{
    Currency, MapError, Money, PageText, Payment, Rejected, Source, format_timestamp,
    parse_timestamp,
};
use serde::de::Error as _;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::books::Payout;
use crate::wire::{
    List, ListLinks, PayProChargeback, PayProEvent, PayProPayment, PayProPayout, PayProRefund,
};

/// A refund of a PayPro payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refund {
    /// PayPro's id of the refund (`PR…`).
    pub id: String,
    /// PayPro's id of the refunded payment (`PP…`); it can be sent in a URL path.
    pub payment_id: String,
    /// How much, exact, in its currency.
    pub amount: Money,
    /// The state word, as sent (`processing`, …; open-ended).
    pub state: String,
    /// Free text.
    pub description: Option<String>,
    /// Why, when said.
    pub reason: Option<String>,
    /// When the refund was made, with the provider's offset kept.
    #[serde(serialize_with = "timestamp")]
    pub created_at: DateTime<FixedOffset>,
    /// When the money went back, when it has.
    #[serde(serialize_with = "optional_timestamp")]
    pub refunded_at: Option<DateTime<FixedOffset>>,
}

impl Refund {
    /// The refunded payment's unified id (`paypro:PP…`), as [`Payment::id`] has it.
    pub fn unified_payment_id(&self) -> String {
        Source::PayPro.payment_id(&self.payment_id)
    }
}

/// A chargeback of a PayPro payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Chargeback {
    /// PayPro's id of the chargeback (`PC…`).
    pub id: String,
    /// PayPro's id of the charged-back payment (`PP…`); it can be sent in a URL path.
    pub payment_id: String,
    /// How much, exact, in its currency (it may be less than the payment's amount).
    pub amount: Money,
    /// The state word, as sent (`completed`, …; open-ended). See [`Chargeback::is_completed`].
    pub state: String,
    /// Free text.
    pub description: Option<String>,
    /// The bank's reason code (`MD06`, …).
    pub reason: Option<String>,
    /// When the chargeback was made, with the provider's offset kept.
    #[serde(serialize_with = "timestamp")]
    pub created_at: DateTime<FixedOffset>,
    /// When the money was taken back, when it has been.
    #[serde(serialize_with = "optional_timestamp")]
    pub charged_back_at: Option<DateTime<FixedOffset>>,
}

impl Chargeback {
    /// Whether the chargeback is done: its state is `completed` (the one word PROVIDERS.md
    /// documents), in any case. PROVIDERS.md says a completed chargeback is authoritative for
    /// its payment, whatever the payment's own `state` says.
    pub fn is_completed(&self) -> bool {
        self.state.trim().eq_ignore_ascii_case("completed")
    }

    /// The charged-back payment's unified id (`paypro:PP…`), as [`Payment::id`] has it.
    pub fn unified_payment_id(&self) -> String {
        Source::PayPro.payment_id(&self.payment_id)
    }
}

/// One event of PayPro's feed, mapped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// PayPro's id of the event (`EV…`).
    pub id: String,
    /// The event type as sent (`payment.paid`, `chargeback.created`, …; open-ended).
    pub event_type: String,
    /// When the event happened, with the provider's offset kept.
    #[serde(serialize_with = "timestamp")]
    pub created_at: DateTime<FixedOffset>,
    /// What it carries, as it was at the event.
    pub payload: EventPayload,
}

/// What an event carries, mapped by the payload's own `type`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventPayload {
    /// A payment, mapped as `GET /payments` maps it, as it was at the event.
    Payment(Box<Payment>),
    /// A refund.
    Refund(Refund),
    /// A chargeback.
    Chargeback(Chargeback),
    /// A payout, as `GET /payouts` maps it, as it was at the event.
    Payout(Payout),
    /// Anything else (a customer, a type not known yet, or a payout that cannot be mapped: the
    /// hourly walk of `/payouts` reads it, and quarantines it there if it cannot be mapped
    /// either): not read further.
    Other {
        /// The payload's `type`, when it said one.
        payload_type: Option<String>,
        /// The payload's `id`, when it had one.
        payload_id: Option<String>,
    },
}

/// The records of a page that mapped, the ones set aside, and the page's `_links`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodedPage<T> {
    /// The page's `_links` (`next` as sent, not yet checked).
    pub links: ListLinks,
    /// The records that mapped, in the provider's order.
    pub items: Vec<T>,
    /// The records that did not, kept whole with the reason.
    pub rejected: Vec<Rejected>,
}

impl PayProRefund {
    /// Maps this refund. Refused, naming the field: an unknown currency, a negative amount, a
    /// payment id that cannot be sent in a URL path, a missing or offset-less `created_at`, an
    /// offset-less `refunded_at`.
    pub fn to_refund(self) -> Result<Refund, MapError> {
        let fail = |field: &str, problem: String| MapError::new(&self.id, field, problem);
        let amount = money(self.amount, &self.currency).map_err(|(f, p)| fail(f, p))?;
        payments_http::path_segment(&self.payment).map_err(|problem| fail("payment", problem))?;
        let created_at =
            required_time(self.created_at.as_deref()).map_err(|p| fail("created_at", p))?;
        let refunded_at =
            optional_time(self.refunded_at.as_deref()).map_err(|p| fail("refunded_at", p))?;
        Ok(Refund {
            id: self.id,
            payment_id: self.payment,
            amount,
            state: self.state,
            description: self.description,
            reason: self.reason,
            created_at,
            refunded_at,
        })
    }
}

impl PayProChargeback {
    /// Maps this chargeback. Refused, naming the field: an unknown currency, a negative
    /// amount, a payment id that cannot be sent in a URL path, a missing or offset-less
    /// `created_at`, an offset-less `charged_back_at`.
    pub fn to_chargeback(self) -> Result<Chargeback, MapError> {
        let fail = |field: &str, problem: String| MapError::new(&self.id, field, problem);
        let amount = money(self.amount, &self.currency).map_err(|(f, p)| fail(f, p))?;
        payments_http::path_segment(&self.payment).map_err(|problem| fail("payment", problem))?;
        let created_at =
            required_time(self.created_at.as_deref()).map_err(|p| fail("created_at", p))?;
        let charged_back_at = optional_time(self.charged_back_at.as_deref())
            .map_err(|p| fail("charged_back_at", p))?;
        Ok(Chargeback {
            id: self.id,
            payment_id: self.payment,
            amount,
            state: self.state,
            description: self.description,
            reason: self.reason,
            created_at,
            charged_back_at,
        })
    }
}

impl<P> PayProEvent<P> {
    /// Maps this event with its payload mapped by `map`. Refused, naming the field: a missing
    /// or offset-less `created_at`, a missing or null payload, and whatever `map` refuses in
    /// the payload (named `payload.…`).
    pub fn to_event(
        self,
        map: impl FnOnce(P) -> Result<EventPayload, MapError>,
    ) -> Result<Event, MapError> {
        let id = self.id;
        let created_at = required_time(self.created_at.as_deref())
            .map_err(|problem| MapError::new(&id, "created_at", problem))?;
        let payload = self
            .payload
            .ok_or_else(|| MapError::new(&id, "payload", "is missing or null"))?;
        let payload = map(payload).map_err(|error| {
            let problem = if error.record == id {
                error.problem
            } else {
                format!("{} (in the payload `{}`)", error.problem, error.record)
            };
            MapError::new(&id, &format!("payload.{}", error.field), problem)
        })?;
        Ok(Event {
            id,
            event_type: self.event_type,
            created_at,
            payload,
        })
    }
}

/// What a payload is, by its own `type` or, when it says none, by the event type's prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PayloadKind {
    Payment,
    Refund,
    Chargeback,
    Payout,
    Other,
}

/// Reads only what tells a payload's kind, without failing on anything else.
pub(crate) fn payload_kind(event: &str) -> PayloadKind {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(default, deserialize_with = "payments_model::tolerant::text")]
        event_type: Option<String>,
        #[serde(default, borrow)]
        payload: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct PayloadHead {
        #[serde(
            rename = "type",
            default,
            deserialize_with = "payments_model::tolerant::text"
        )]
        kind: Option<String>,
    }
    let Ok(head) = serde_json::from_str::<Head<'_>>(event) else {
        return PayloadKind::Other;
    };
    let said = head
        .payload
        .and_then(|payload| serde_json::from_str::<PayloadHead>(payload.get()).ok())
        .and_then(|payload| payload.kind);
    let word = match &said {
        Some(kind) => kind.as_str(),
        None => head
            .event_type
            .as_deref()
            .and_then(|event_type| event_type.split_once('.'))
            .map_or("", |(prefix, _)| prefix),
    };
    match word.trim() {
        "payment" => PayloadKind::Payment,
        "refund" => PayloadKind::Refund,
        "chargeback" => PayloadKind::Chargeback,
        "payout" => PayloadKind::Payout,
        _ => PayloadKind::Other,
    }
}

/// The `type` and `id` of a payload this crate does not read, leniently.
#[derive(Deserialize)]
struct OtherPayload {
    #[serde(
        rename = "type",
        default,
        deserialize_with = "payments_model::tolerant::text"
    )]
    kind: Option<String>,
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// A payload read only for its `type` and `id`; anything (a list, a string) reads as `None`.
struct Lenient(Option<OtherPayload>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Lenient, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Lenient(serde_json::from_value::<OtherPayload>(value).ok()))
    }
}

/// Maps one raw event of `text`; the event is set aside whole when it cannot be.
fn map_event<'t>(text: &'t PageText<'_>, raw: &'t RawValue) -> (Vec<Event>, Vec<Rejected>) {
    let one = std::slice::from_ref(&raw);
    match payload_kind(raw.get()) {
        PayloadKind::Payment => text.decode_records(one, |event: PayProEvent<PayProPayment>| {
            event.to_event(|payment| {
                payment
                    .to_payment()
                    .map(|p| EventPayload::Payment(Box::new(p)))
            })
        }),
        PayloadKind::Refund => text.decode_records(one, |event: PayProEvent<PayProRefund>| {
            event.to_event(|refund| refund.to_refund().map(EventPayload::Refund))
        }),
        PayloadKind::Chargeback => {
            text.decode_records(one, |event: PayProEvent<PayProChargeback>| {
                event
                    .to_event(|chargeback| chargeback.to_chargeback().map(EventPayload::Chargeback))
            })
        }
        PayloadKind::Payout => {
            let (events, rejected) =
                text.decode_records(one, |event: PayProEvent<PayProPayout>| {
                    event.to_event(|payout| payout.to_payout().map(EventPayload::Payout))
                });
            // A payout the feed cannot map is kept as other: the feed has no use for it.
            if rejected.is_empty() {
                (events, rejected)
            } else {
                map_other(text, one)
            }
        }
        PayloadKind::Other => map_other(text, one),
    }
}

/// Maps one raw event as [`EventPayload::Other`], reading only its payload's `type` and `id`.
fn map_other<'t>(text: &'t PageText<'_>, one: &[&'t RawValue]) -> (Vec<Event>, Vec<Rejected>) {
    text.decode_records(one, |event: PayProEvent<Lenient>| {
        let head = event.payload.and_then(|payload| payload.0);
        let other = EventPayload::Other {
            payload_type: head.as_ref().and_then(|head| head.kind.clone()),
            payload_id: head.and_then(|head| head.id).and_then(|id| match id {
                serde_json::Value::String(id) => Some(id),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }),
        };
        // A payload that is missing or unreadable is no error here: nothing is read from it.
        PayProEvent {
            id: event.id,
            kind: event.kind,
            event_type: event.event_type,
            payload: Some(other),
            created_at: event.created_at,
            links: event.links,
        }
        .to_event(Ok)
    })
}

/// Decodes a page of `GET /events` and maps each event on its own: one that cannot be mapped
/// (also one whose bytes are not valid UTF-8) is set aside whole with its reason, naming the
/// event and the field (`payload.amount`), and the rest of the page is kept.
pub fn decode_events_page(body: &[u8]) -> Result<DecodedPage<Event>, serde_json::Error> {
    let text = PageText::new(body);
    let list: List<&RawValue> = text.parse()?;
    let mut page = DecodedPage {
        links: ListLinks::default(),
        items: Vec::with_capacity(list.data.len()),
        rejected: Vec::new(),
    };
    for raw in &list.data {
        let (events, rejected) = map_event(&text, raw);
        page.items.extend(events);
        page.rejected.extend(rejected);
    }
    page.links = checked_links(&text, list.links)?;
    Ok(page)
}

/// Decodes a page of `GET /refunds` and maps each refund on its own (see
/// [`decode_events_page`]).
pub fn decode_refunds_page(body: &[u8]) -> Result<DecodedPage<Refund>, serde_json::Error> {
    decode_list(body, PayProRefund::to_refund)
}

/// Decodes a page of `GET /chargebacks` and maps each chargeback on its own (see
/// [`decode_events_page`]).
pub fn decode_chargebacks_page(body: &[u8]) -> Result<DecodedPage<Chargeback>, serde_json::Error> {
    decode_list(body, PayProChargeback::to_chargeback)
}

/// Decodes the body of `GET /payments/{id}` (one payment object) and maps it: the payment, or
/// the record set aside whole with its reason.
pub fn decode_payment(body: &[u8]) -> Result<Result<Payment, Rejected>, serde_json::Error> {
    let text = PageText::new(body);
    let raw: &RawValue = text.parse()?;
    let (mut payments, mut rejected) =
        text.decode_records(std::slice::from_ref(&raw), PayProPayment::to_payment);
    match (payments.pop(), rejected.pop()) {
        (Some(payment), _) => Ok(Ok(payment)),
        (None, Some(rejected)) => Ok(Err(rejected)),
        (None, None) => Err(serde_json::Error::custom(
            "the payment was neither mapped nor set aside",
        )),
    }
}

pub(crate) fn decode_list<W, T>(
    body: &[u8],
    map: impl FnMut(W) -> Result<T, MapError>,
) -> Result<DecodedPage<T>, serde_json::Error>
where
    W: serde::de::DeserializeOwned,
{
    let text = PageText::new(body);
    let list: List<&RawValue> = text.parse()?;
    let (items, rejected) = text.decode_records(&list.data, map);
    Ok(DecodedPage {
        links: checked_links(&text, list.links)?,
        items,
        rejected,
    })
}

/// The `_links` of a page, refused when the next link held bytes that were not valid UTF-8:
/// following a mangled link would read the wrong page; taking it for none would end early.
fn checked_links(text: &PageText<'_>, links: ListLinks) -> Result<ListLinks, serde_json::Error> {
    if links
        .next
        .as_deref()
        .is_some_and(|next| text.is_damaged(next))
    {
        return Err(serde_json::Error::custom(
            "`_links.next` holds bytes that are not valid UTF-8",
        ));
    }
    Ok(links)
}

/// Minor units in `currency` as exact money; the field at fault and why otherwise.
fn money(minor: i64, currency: &str) -> Result<Money, (&'static str, String)> {
    let currency = Currency::from_code(currency).map_err(|e| ("currency", e.to_string()))?;
    if minor < 0 {
        return Err(("amount", format!("{minor} is negative")));
    }
    Ok(Money::from_minor(minor, currency))
}

pub(crate) fn required_time(text: Option<&str>) -> Result<DateTime<FixedOffset>, String> {
    match text {
        Some(text) => parse_timestamp(text),
        None => Err("is null".to_owned()),
    }
}

/// PHP writes an unset date as an empty string as often as as null.
pub(crate) fn optional_time(text: Option<&str>) -> Result<Option<DateTime<FixedOffset>>, String> {
    text.filter(|text| !text.trim().is_empty())
        .map(parse_timestamp)
        .transpose()
}

pub(crate) fn timestamp<S: Serializer>(
    at: &DateTime<FixedOffset>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_timestamp(at))
}

pub(crate) fn optional_timestamp<S: Serializer>(
    at: &Option<DateTime<FixedOffset>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => timestamp(at, serializer),
        None => serializer.serialize_none(),
    }
}
