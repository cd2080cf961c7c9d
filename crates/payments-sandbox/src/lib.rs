//! A local HTTP server that behaves like the MijnKlantportaal (MKP) and PayPro APIs, for
//! tests, benchmarks, the demo and your own integration tests. It listens on loopback only.
//!
//! - The same paths, envelopes and auth as the real APIs: MKP under `{base}/mkp/v1`
//!   (Laravel simple pagination with absolute `next_page_url`, 15 per page, Bearer auth, a
//!   rolling-window rate limit with `X-RateLimit-*` headers and the documented 429 body), PayPro
//!   under `{base}/paypro` (`/payments`, `/payments/{id}`, the change feeds `/events`,
//!   `/refunds` and `/chargebacks`, a payment's `/payments/{id}/refunds` and
//!   `/payments/{id}/chargebacks`, and `/payouts`: newest first, `limit` 1–100, opaque cursors
//!   in `_links.next`; `/payouts/{id}`; `/balances`).
//! - A deterministic data set from a seed and a size: links of every status, 0 to hundreds of
//!   payments per link, PayPro payments of every state with refunds and chargebacks, unknown
//!   status words, null payer names; PayPro's events, refunds and chargebacks derived from its
//!   payments. Records are computed from `(seed, index)` on demand, so a million payments cost
//!   no memory. Tests change data at run time, including late refunds and chargebacks on old
//!   payments that appear at the top of the event feed ([`Sandbox::refund_paypro_payment`],
//!   [`Sandbox::refund_paypro_payment_at`] for a refund made on a day long past,
//!   [`Sandbox::charge_back_paypro_payment`]).
//! - PayPro's books: payouts with fees every few days ([`SandboxConfig::paypro_payout_spacing`],
//!   `payout.*` events), never more than the balance held, and a balance that is exactly what
//!   the listings add up to ([`Sandbox::paypro_balance`]), also after changes made at run time
//!   ([`Sandbox::add_paypro_payout`]). [`SandboxConfig::with_paypro_span`] spreads the
//!   payments over months for tests of statements.
//! - Fault knobs, each off by default: latency, 5xx rate, 429 bursts (`Retry-After` in seconds
//!   or as an HTTP date), dropped connections, truncated bodies, payments inserted while a sync
//!   pages, next links to a foreign host, a repeating cursor ([`Faults`]); and faults in what is
//!   served ([`ContentFaults`]): records with an inexact amount or bytes that are not UTF-8, link
//!   ids with path characters, pages over a size, PHP's envelope quirks, an event feed that
//!   has lost its oldest events. [`Sandbox::spoiled`] names the records and links they spoil.
//! - Faults on one endpoint, matched by API and path ([`Sandbox::add_endpoint_fault`],
//!   [`EndpointFault`]): a status with `Retry-After` and a body, a next link that loops
//!   ([`FaultAnswer::RepeatNext`]), a 200 that is not JSON, latency, each for so many requests.
//! - A hostile PayPro change feed: chargebacks checked against nothing (any amount, any
//!   currency), made in the past so that they land below newer items, and corrected silently
//!   ([`Sandbox::add_paypro_chargeback`], [`Sandbox::correct_paypro_chargeback`]); provider text
//!   with control characters ([`Sandbox::set_paypro_text`], [`Sandbox::set_mkp_text`]); payment
//!   ids with any characters ([`Sandbox::insert_paypro_payment_with_id`]).
//! - Webhooks ([`Sandbox::set_webhooks`], [`WebhookDelivery`]): each announced change is POSTed
//!   to a receiver, signed as each provider signs (PayPro's `PayPro-Timestamp` and
//!   `PayPro-Signature`, MKP's `X-Webhook-Signature`), from a background task, with losses,
//!   redeliveries, reordering, delay and wrong signatures on request; every attempt is logged
//!   ([`Sandbox::webhook_deliveries`]).
//!
//! # Examples
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use payments_sandbox::{Sandbox, SandboxConfig};
//!
//! let sandbox = Sandbox::start(SandboxConfig { mkp_links: 3, paypro_payments: 5, ..SandboxConfig::default() }).await?;
//! assert!(sandbox.mkp_base_url().ends_with("/mkp/v1"));
//! assert_eq!(sandbox.paypro_payments().len(), 5);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod data;
mod feed;
mod payouts;
mod server;
mod webhooks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use tokio::sync::watch;

pub use data::{
    MkpLink, MkpPayment, PayMethod, PayProBalance, PayProBankAccount, PayProChargeback,
    PayProCustomer, PayProEvent, PayProPayload, PayProPayment, PayProPayout, PayProRefund,
    default_anchor,
};

pub use webhooks::{WebhookAttempt, WebhookDelivery};

use data::{Data, Generator, Overlay};
use webhooks::{Deliveries, Outgoing};

/// Which API a request was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    /// MijnKlantportaal.
    Mkp,
    /// PayPro.
    PayPro,
}

/// How a 429 states its wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RetryAfterForm {
    /// `Retry-After: 2`.
    #[default]
    Seconds,
    /// `Retry-After: Sat, 21 Nov 2026 10:00:00 GMT`.
    HttpDate,
}

/// A burst of 429 answers, regardless of the rate limit: request numbers `n` (counted from 1
/// over both APIs) with `n ≥ every` and `n % every < length` are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Burst {
    /// The period of the bursts, in requests.
    pub every: u64,
    /// How many requests each burst refuses.
    pub length: u64,
    /// The wait each 429 asks for.
    pub retry_after: Duration,
    /// How the wait is written.
    pub form: RetryAfterForm,
}

/// MKP's rolling-window rate limit: `limit` requests per `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitWindow {
    /// Requests allowed per window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

/// Faults to inject, each off by default. Rates are probabilities per request, drawn
/// deterministically from the seed and the request number.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Added to every request.
    pub latency: Duration,
    /// Share of requests answered 502/503.
    pub server_error_rate: f64,
    /// Share of requests whose connection is dropped without an answer.
    pub reset_rate: f64,
    /// Share of successful answers whose body is cut in half.
    pub truncate_rate: f64,
    /// Bursts of 429 answers.
    pub burst_429: Option<Burst>,
    /// Every `n`th request inserts a new PayPro payment at the top of the list and a new
    /// pending payment into the first open MKP link, as real traffic would during a sync.
    pub insert_every: Option<u64>,
    /// Next-page links point at this origin (`http://127.0.0.1:9`) instead of the sandbox.
    pub foreign_next: Option<String>,
    /// Next-page links point at the page just served.
    pub repeat_cursor: bool,
    /// Every Nth PayPro payment of the listing (by position, from 1) is served with an amount
    /// that is not whole cents (`"12.951"`), so a sync must quarantine it and keep the rest.
    pub bad_record_every: Option<u64>,
}

/// Faults in *what* is served rather than how: records, links and pages that a correct client
/// narrows to the smallest unit (a record, a link, a page size) while it keeps the rest. Each is
/// off by default, and when off the sandbox serves exactly what it served before they existed.
/// [`Sandbox::spoiled`] names the records and links they spoil.
///
/// (They are not fields of [`Faults`] so that code that builds a `Faults` field by field keeps
/// compiling.)
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContentFaults {
    /// Every Nth PayPro payment of the listing (by position, from 1, like
    /// [`Faults::bad_record_every`]) is served with a `description` that ends in `caf` and the
    /// byte 0xE9 (Latin-1 `é`), which is not valid UTF-8: a sync must set that record aside and
    /// keep the rest of its page.
    pub paypro_invalid_utf8_every: Option<u64>,
    /// Payment `k` of MKP link `j` (both counted from 0 in listing order) is served with a
    /// `payersName` holding the byte 0xE9 (`Ren\xE9e …`) when `j + k + 1` is a multiple of N.
    pub mkp_invalid_utf8_every: Option<u64>,
    /// Every Nth MKP link of the listing (by position, from 1) is listed with an id holding path
    /// characters: `{id}/../x`. A correct client never requests its payments; the sandbox knows
    /// no link by that id, so any request for them, escaped or not, is answered 404
    /// ([`Sandbox::count_status`]).
    pub mkp_path_id_every: Option<u64>,
    /// MKP links whose every page of payments is over a size.
    pub mkp_oversized_links: Option<OversizedLinks>,
    /// PayPro pages over a size while the `limit` asked for is above a value.
    pub paypro_oversized_pages: Option<OversizedPages>,
    /// Envelopes written as PHP and Laravel APIs write them in the wild: `current_page` and
    /// `per_page` (MKP) and `count` (PayPro) as strings (`"15"`); every link of the envelope
    /// relative (MKP: `/mkp/v1/payment-links?page=2`, the path from the root; PayPro:
    /// `payments?limit=100&cursor=…`, relative to the listing); `data: null` on an empty page.
    /// [`Faults::foreign_next`], when set, still writes its absolute next links.
    pub php_envelopes: bool,
    /// PayPro's `/events` keeps only its newest N events, as a feed that has dropped its oldest
    /// ones would: the last page ends after the Nth event, and a cursor after an event that is
    /// no longer kept is refused (422). [`Sandbox::paypro_events`] still lists them all.
    pub paypro_events_kept: Option<usize>,
}

/// MKP links whose payments pages are over a size: every `every`th link of the listing (by
/// position, from 1) has each page of its payments padded with an extra envelope field
/// `"padding"` of `bytes` spaces, so that its body is over `bytes` while the records stay as they
/// are. A client whose body cap is below `bytes` sets the link aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OversizedLinks {
    /// The period, in links.
    pub every: u64,
    /// The padding, in bytes.
    pub bytes: usize,
}

/// PayPro pages over a size: a page asked for with a `limit` above `above_limit` is padded with
/// an extra envelope field `"padding"` of `bytes` spaces. A client whose body cap is below
/// `bytes` gets through by asking again with a smaller `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OversizedPages {
    /// The largest `limit` answered with a page of normal size.
    pub above_limit: usize,
    /// The padding, in bytes.
    pub bytes: usize,
}

impl ContentFaults {
    /// Whether the PayPro payment at listing `position` (from 0) is served with a byte that is
    /// not UTF-8.
    pub(crate) fn paypro_invalid_utf8(&self, position: usize) -> bool {
        every(self.paypro_invalid_utf8_every, position as u64 + 1)
    }

    /// Whether payment `k` of link `j` is served with a byte that is not UTF-8.
    pub(crate) fn mkp_invalid_utf8(&self, j: usize, k: usize) -> bool {
        every(self.mkp_invalid_utf8_every, (j + k) as u64 + 1)
    }

    /// The id link `j` is listed with when it differs from its own.
    pub(crate) fn served_link_id(&self, j: usize, id: &str) -> Option<String> {
        every(self.mkp_path_id_every, j as u64 + 1).then(|| format!("{id}/../x"))
    }

    /// The padding of each page of link `j`'s payments, if any.
    pub(crate) fn link_padding(&self, j: usize) -> Option<usize> {
        self.mkp_oversized_links
            .filter(|o| every(Some(o.every), j as u64 + 1))
            .map(|o| o.bytes)
    }

    /// The padding of a PayPro page of `limit`, if any.
    pub(crate) fn paypro_padding(&self, limit: usize) -> Option<usize> {
        self.paypro_oversized_pages
            .filter(|o| limit > o.above_limit)
            .map(|o| o.bytes)
    }
}

/// A fault on the requests to one endpoint, matched by API and path: a listing that answers 429
/// or 503 for a while, a slow endpoint, a feed whose next link loops, a page that is not JSON.
/// Add them with [`Sandbox::add_endpoint_fault`]; each is off until added.
///
/// A request is matched before every other fault, the auth and MKP's rate limit (as a gateway in
/// front of the API would answer), after [`Faults::latency`]. Of the faults that match it, the
/// first one added that still has [`times`](EndpointFault::times) left takes one and answers
/// (with its latency); when every match is spent, the first match's latency is still added and
/// the request is answered normally. A `Status` or `NotJson` answer goes no further (it is
/// logged, [`Sandbox::requests`], like any other); a `Normal` or `RepeatNext` request goes on
/// through the other faults, the auth and the rate limit, and still spends its `times` when one
/// of them answers instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointFault {
    /// Which API.
    pub api: Api,
    /// The path below the API's base URL, without the query: "/events", "/chargebacks",
    /// "/payments/PP…" (PayPro) or "/payment-links" (MKP). A trailing `*` matches every path that
    /// starts with what comes before it ("/payments/*" is every read by id, but not "/payments").
    /// It is compared with the path as sent and as percent-decoded.
    pub path: String,
    /// What the matching requests get.
    pub answer: FaultAnswer,
    /// How many matching requests get `answer`; `None`: all of them. Once spent, the endpoint
    /// answers normally (the latency stays).
    pub times: Option<u64>,
    /// Added before each matching request is answered (Duration::ZERO for none).
    pub latency: Duration,
}

/// What the requests an [`EndpointFault`] matches get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultAnswer {
    /// The normal answer (with `latency`, a slow endpoint).
    Normal,
    /// This HTTP status, with `Retry-After: <seconds>` when given (whole seconds, rounded up),
    /// and `body` as the body (default: the API's usual JSON error body for that status). A
    /// `body` that is JSON is sent as `application/json`, any other as `text/html`.
    Status {
        /// The status, from 100 to 999.
        status: u16,
        /// The wait to ask for.
        retry_after: Option<Duration>,
        /// The body, instead of the API's error body.
        body: Option<String>,
    },
    /// The normal answer, but its next link (`_links.next` for PayPro, `next_page_url` for MKP)
    /// points at the very page just served, as a feed that loops would: on every listing
    /// (PayPro's `/payments`, `/events`, `/refunds`, `/chargebacks`; MKP's `/payment-links` and
    /// a link's payments), also on the last page, like [`Faults::repeat_cursor`] does for all.
    RepeatNext,
    /// 200 with a body that is not JSON (`<html>…`, as `text/html`), as a captive portal or a
    /// bot check in front of the API would serve it.
    NotJson,
}

impl EndpointFault {
    /// Whether this fault is for a request to `path` (below the API's base URL) of `api`.
    fn matches(&self, api: Api, path: &str) -> bool {
        self.api == api
            && match self.path.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == self.path,
            }
    }
}

/// A chargeback to add to a PayPro payment ([`Sandbox::add_paypro_chargeback`]), as the provider
/// could send it, checked against nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargebackSpec {
    /// The charged-back payment's id (`PP…`).
    pub payment_id: String,
    /// Minor units; NOT checked against the payment's amount (an oversized chargeback is allowed).
    pub amount: i64,
    /// ISO code; `None`: the payment's currency.
    pub currency: Option<String>,
    /// `completed`, else `processing`.
    pub completed: bool,
    /// When the chargeback and its `chargeback.created` event were made; `None`: now. An earlier
    /// time places them among the items added at run time by their time (below newer ones, as an
    /// event inserted late into the feed would be), so a reader already past that point only sees
    /// them by reading back.
    pub at: Option<DateTime<Utc>>,
}

/// Whether the 1-based `ordinal` is a multiple of the period `n` (never for `None` or 0).
pub(crate) fn every(n: Option<u64>, ordinal: u64) -> bool {
    n.is_some_and(|n| n > 0 && ordinal.is_multiple_of(n))
}

/// What the faults in force spoil: the records and links a correct client cannot read and must
/// name instead (see [`Sandbox::spoiled`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spoiled {
    /// PayPro payments served with an amount that is not whole cents
    /// ([`Faults::bad_record_every`]) or bytes that are not UTF-8, by id, in listing order.
    pub paypro_payments: Vec<String>,
    /// MKP payments served with bytes that are not UTF-8, in listing order (their link may be
    /// spoiled too, and then they are never read).
    pub mkp_payments: Vec<SpoiledPayment>,
    /// MKP links listed with an id holding path characters: their payments are never read.
    pub mkp_path_links: Vec<SpoiledLink>,
    /// MKP links whose payments pages are over [`OversizedLinks::bytes`], by id: a client whose
    /// body cap is below that sets them aside.
    pub mkp_oversized_links: Vec<String>,
}

/// An MKP payment served spoiled, with its link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoiledPayment {
    /// The payment's id.
    pub id: String,
    /// Its link's id, as generated.
    pub link_id: String,
}

/// An MKP link listed with another id than its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoiledLink {
    /// The link's id, as generated (what [`Sandbox::mkp_links`] and [`Sandbox::mkp_payments`] use).
    pub id: String,
    /// The id it is listed with.
    pub served_id: String,
}

/// The longest [`SandboxConfig::paypro_spacing`] and [`SandboxConfig::mkp_link_spacing`], in
/// seconds: a leap year.
const MAX_SPACING: u64 = 366 * 86_400;

/// The shortest [`SandboxConfig::paypro_payout_spacing`], in seconds: an hour.
const MIN_PAYOUT_SPACING: u64 = 3600;

/// The default [`SandboxConfig::paypro_payout_spacing`]: three days.
pub const DEFAULT_PAYOUT_SPACING: Duration = Duration::from_secs(3 * 86_400);

/// How to start a sandbox.
#[derive(Clone, Debug, PartialEq)]
pub struct SandboxConfig {
    /// Seeds the data set: the same seed and sizes give the same data.
    pub seed: u64,
    /// How many MKP payment links.
    pub mkp_links: usize,
    /// The time between generated MKP links (6 hours; in whole seconds, up to a year): link `j`
    /// of `n` is created about `n − j` spacings and 30 days before `anchor`, and its payments
    /// 37 minutes apart after it. A day's spacing and 400 links reach back more than a year, for
    /// tests of late changes to old MKP payments.
    pub mkp_link_spacing: Duration,
    /// How many PayPro payments.
    pub paypro_payments: usize,
    /// The newest generated PayPro payment's time; the rest go back from there.
    pub anchor: DateTime<Utc>,
    /// The time between generated PayPro payments (6 minutes; in whole seconds, from a second
    /// to a year): payment `i` is created about `i` spacings before `anchor`. A day's spacing
    /// gives 300 payments spanning 300 days, so tests can reach payments months old (see
    /// [`Sandbox::old_paid_paypro_payment`]) without paging through tens of thousands.
    pub paypro_spacing: Duration,
    /// The time between generated PayPro payouts ([`DEFAULT_PAYOUT_SPACING`], three days; in
    /// whole seconds, from an hour to a year); `None`: no payouts. Payout `k` is made about
    /// `k` spacings before `anchor` (less up to a third of one), as long as the payments reach
    /// back, and transfers most of what the payments before it brought in since the previous
    /// one, never more than the balance held (see [`Sandbox::paypro_payouts`]). The default
    /// data set (500 payments 6 minutes apart) has one.
    pub paypro_payout_spacing: Option<Duration>,
    /// The MKP key with the `paymentlinks.read` scope.
    pub mkp_key: String,
    /// An MKP key without that scope (answered 403).
    pub mkp_scopeless_key: String,
    /// The PayPro key.
    pub paypro_key: String,
    /// MKP's page size (15, like the real API).
    pub mkp_per_page: usize,
    /// MKP's rate limit (60 per minute, like the real API); `None` turns it off.
    pub mkp_rate_limit: Option<RateLimitWindow>,
    /// The port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Faults to inject.
    pub faults: Faults,
    /// Faults in what is served.
    pub content_faults: ContentFaults,
}

impl Default for SandboxConfig {
    fn default() -> SandboxConfig {
        SandboxConfig {
            seed: 1,
            mkp_links: 60,
            paypro_payments: 500,
            anchor: default_anchor(),
            paypro_spacing: Duration::from_secs(360),
            paypro_payout_spacing: Some(DEFAULT_PAYOUT_SPACING),
            mkp_link_spacing: Duration::from_secs(6 * 3600),
            mkp_key: "mkp_sandbox_key".to_owned(),
            mkp_scopeless_key: "mkp_sandbox_noscope".to_owned(),
            paypro_key: "pp_sandbox_key".to_owned(),
            mkp_per_page: 15,
            mkp_rate_limit: Some(RateLimitWindow {
                limit: 60,
                window: Duration::from_secs(60),
            }),
            port: 0,
            faults: Faults::default(),
            content_faults: ContentFaults::default(),
        }
    }
}

impl SandboxConfig {
    /// This configuration with its PayPro payments spread over `span` before the anchor:
    /// [`SandboxConfig::paypro_spacing`] set to `span` divided by the number of payments (at
    /// least a second). With `anchor: Utc::now()`, `with_paypro_span(Duration::from_secs(90 *
    /// 86_400))` gives payments, refunds, chargebacks and payouts over the last 90 days.
    ///
    /// ```
    /// use std::time::Duration;
    /// use payments_sandbox::SandboxConfig;
    ///
    /// let config = SandboxConfig { paypro_payments: 600, ..SandboxConfig::default() }
    ///     .with_paypro_span(Duration::from_secs(60 * 86_400));
    /// assert_eq!(config.paypro_spacing, Duration::from_secs(8_640));
    /// ```
    pub fn with_paypro_span(mut self, span: Duration) -> SandboxConfig {
        let payments = self.paypro_payments.max(1) as u64;
        self.paypro_spacing = Duration::from_secs((span.as_secs() / payments).max(1));
        self
    }
}

/// One request as the sandbox saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// Which API.
    pub api: Api,
    /// The path and query (`/paypro/payments?limit=100&cursor=…`).
    pub path_and_query: String,
    /// The status answered; 0 when the connection was dropped instead.
    pub status: u16,
}

pub(crate) struct Shared {
    config: SandboxConfig,
    faults: RwLock<Faults>,
    content_faults: RwLock<ContentFaults>,
    data: RwLock<Data>,
    requests: AtomicU64,
    limiter: Mutex<server::Window>,
    log: Mutex<Vec<LoggedRequest>>,
    /// The endpoint faults in the order added, each with how many requests it answered.
    endpoint_faults: Mutex<Vec<(EndpointFault, u64)>>,
    /// The webhook deliveries made, and how many changes wait to be delivered.
    deliveries: Arc<Deliveries>,
}

impl Shared {
    fn next_request_number(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn faults(&self) -> Faults {
        self.faults.read().expect("faults lock").clone()
    }

    fn content_faults(&self) -> ContentFaults {
        self.content_faults
            .read()
            .expect("content faults lock")
            .clone()
    }

    /// A number in [0, 1) fixed by the seed, the request number and the fault kind.
    fn roll(&self, request: u64, kind: u64) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed ^ 0x5A5D_B0C5);
        rng.set_stream(100 + kind);
        rng.set_word_pos(u128::from(request) * 2);
        (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn log(&self, api: Api, path_and_query: &str, status: u16) {
        self.log.lock().expect("log lock").push(LoggedRequest {
            api,
            path_and_query: path_and_query.to_owned(),
            status,
        });
    }

    /// The answer and latency of the endpoint faults for a request to `path` (below the API's
    /// base URL, as sent) of `api`, counting it against the fault that answers; `None` when no
    /// fault matches.
    fn endpoint_fault(&self, api: Api, path: &str) -> Option<(FaultAnswer, Duration)> {
        let decoded = server::percent_decoded(path);
        let mut faults = self.endpoint_faults.lock().expect("endpoint faults lock");
        let mut spent = None;
        for (fault, answered) in faults.iter_mut() {
            if !fault.matches(api, path) && !fault.matches(api, &decoded) {
                continue;
            }
            if fault.times.is_none_or(|times| *answered < times) {
                *answered += 1;
                return Some((fault.answer.clone(), fault.latency));
            }
            spent.get_or_insert((FaultAnswer::Normal, fault.latency));
        }
        spent
    }

    fn insert_during_sync(&self) {
        let mut data = self.data.write().expect("data lock");
        let now = Utc::now();
        data.insert_paypro(None, now);
        if let Some(open) = (0..data.link_count())
            .map(|j| data.link(j))
            .find(|l| l.status == "open")
        {
            data.add_mkp_payment(&open.id, now);
        }
    }
}

/// A running sandbox. It stops when dropped.
pub struct Sandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Starts a sandbox on 127.0.0.1 (on `config.port`, or any free port when 0), serving until
    /// the returned handle is dropped. Must be called within a Tokio runtime.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let (listener, addr) = server::bind(config.port).await?;
        let data = Data {
            generator: Generator {
                seed: config.seed,
                mkp_links: config.mkp_links,
                paypro_payments: config.paypro_payments,
                anchor: config.anchor,
                paypro_spacing: config.paypro_spacing.as_secs().clamp(1, MAX_SPACING) as i64,
                mkp_link_spacing: config.mkp_link_spacing.as_secs().min(MAX_SPACING) as i64,
                paypro_payout_spacing: config.paypro_payout_spacing.map_or(0, |spacing| {
                    spacing.as_secs().clamp(MIN_PAYOUT_SPACING, MAX_SPACING) as i64
                }),
                payouts: Default::default(),
            },
            overlay: Overlay::default(),
            outbox: None,
        };
        let shared = Arc::new(Shared {
            faults: RwLock::new(config.faults.clone()),
            content_faults: RwLock::new(config.content_faults.clone()),
            config,
            data: RwLock::new(data),
            requests: AtomicU64::new(0),
            limiter: Mutex::new(server::Window::new()),
            log: Mutex::new(Vec::new()),
            endpoint_faults: Mutex::new(Vec::new()),
            deliveries: Arc::new(Deliveries::default()),
        });
        let (shutdown, stopped) = watch::channel(false);
        tokio::spawn(server::serve(
            listener,
            server::router(shared.clone()),
            stopped,
        ));
        Ok(Sandbox {
            shared,
            addr,
            shutdown,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MKP base URL to configure a client with (`http://127.0.0.1:PORT/mkp/v1`).
    pub fn mkp_base_url(&self) -> String {
        format!("http://{}/mkp/v1", self.addr)
    }

    /// The PayPro base URL to configure a client with (`http://127.0.0.1:PORT/paypro`).
    pub fn paypro_base_url(&self) -> String {
        format!("http://{}/paypro", self.addr)
    }

    /// The configuration it was started with (keys included: these are the sandbox's own).
    pub fn config(&self) -> &SandboxConfig {
        &self.shared.config
    }

    /// Replaces the faults from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.write().expect("faults lock") = faults;
    }

    /// Replaces the faults in what is served from now on.
    pub fn set_content_faults(&self, faults: ContentFaults) {
        *self
            .shared
            .content_faults
            .write()
            .expect("content faults lock") = faults;
    }

    /// Adds a fault; faults are matched in the order added, the first match that still has
    /// `times` left answers (see [`EndpointFault`]).
    ///
    /// # Panics
    ///
    /// When a [`FaultAnswer::Status`] is not from 100 to 999.
    pub fn add_endpoint_fault(&self, fault: EndpointFault) {
        if let FaultAnswer::Status { status, .. } = fault.answer {
            assert!(
                (100..=999).contains(&status),
                "an endpoint fault's status must be from 100 to 999, not {status}"
            );
        }
        self.shared
            .endpoint_faults
            .lock()
            .expect("endpoint faults lock")
            .push((fault, 0));
    }

    /// Removes every endpoint fault.
    pub fn clear_endpoint_faults(&self) {
        self.shared
            .endpoint_faults
            .lock()
            .expect("endpoint faults lock")
            .clear();
    }

    /// What the faults in force spoil, as served now: the records and links a correct client
    /// cannot read and must name. [`Sandbox::mkp_links`], [`Sandbox::mkp_payments`] and
    /// [`Sandbox::paypro_payments`] keep giving the records as generated.
    pub fn spoiled(&self) -> Spoiled {
        let faults = self.shared.faults();
        let content = self.shared.content_faults();
        let data = self.shared.data.read().expect("data lock");
        let mut spoiled = Spoiled::default();
        for position in 0..data.paypro_count() {
            if every(faults.bad_record_every, position as u64 + 1)
                || content.paypro_invalid_utf8(position)
            {
                spoiled.paypro_payments.push(data.paypro_at(position).id);
            }
        }
        for j in 0..data.link_count() {
            let link = data.link(j);
            if let Some(served_id) = content.served_link_id(j, &link.id) {
                spoiled.mkp_path_links.push(SpoiledLink {
                    id: link.id.clone(),
                    served_id,
                });
            }
            if content.link_padding(j).is_some() {
                spoiled.mkp_oversized_links.push(link.id.clone());
            }
            for k in 0..data.link_payment_count(j, &link.id) {
                if content.mkp_invalid_utf8(j, k) {
                    spoiled.mkp_payments.push(SpoiledPayment {
                        id: data.link_payment(&link, j, k).id,
                        link_id: link.id.clone(),
                    });
                }
            }
        }
        spoiled
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log.lock().expect("log lock").clone()
    }

    /// How many requests were answered with `status` (0: dropped connections).
    pub fn count_status(&self, api: Api, status: u16) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.api == api && r.status == status)
            .count()
    }

    /// All MKP links, in listing order, as served now.
    pub fn mkp_links(&self) -> Vec<MkpLink> {
        let data = self.shared.data.read().expect("data lock");
        (0..data.link_count()).map(|j| data.link(j)).collect()
    }

    /// A link's payments, in listing order, as served now; empty for an unknown link.
    pub fn mkp_payments(&self, link_id: &str) -> Vec<MkpPayment> {
        let data = self.shared.data.read().expect("data lock");
        let Some(j) = data.generator.mkp_link_index(link_id) else {
            return Vec::new();
        };
        let link = data.link(j);
        (0..data.link_payment_count(j, link_id))
            .map(|k| data.link_payment(&link, j, k))
            .collect()
    }

    /// All PayPro payments, newest first, as served now.
    pub fn paypro_payments(&self) -> Vec<PayProPayment> {
        let data = self.shared.data.read().expect("data lock");
        (0..data.paypro_count())
            .map(|p| data.paypro_at(p))
            .collect()
    }

    /// Changes an MKP payment's status word. With webhooks on ([`Sandbox::set_webhooks`]), a
    /// payment made `paid` is announced as `payment-link-paid` for its link; MKP documents no
    /// webhook for other payment changes, so they stay silent.
    pub fn set_mkp_payment_status(&self, payment_id: &str, status: &str) {
        let mut data = self.shared.data.write().expect("data lock");
        data.overlay
            .mkp_payment_status
            .insert(payment_id.to_owned(), status.to_owned());
        if status == "paid"
            && let Some(j) = mkp_link_of_payment(payment_id)
            && j < data.link_count()
        {
            announce_mkp(&data, "payment-link-paid", j);
        }
    }

    /// Changes an MKP link's status word (a link that is no longer `open` loses its checkout URL).
    /// With webhooks on, `paid` is announced as `payment-link-paid` and `expired` as
    /// `payment-link-expired` (MKP documents no webhook for the others).
    pub fn set_mkp_link_status(&self, link_id: &str, status: &str) {
        let mut data = self.shared.data.write().expect("data lock");
        data.overlay
            .mkp_link_status
            .insert(link_id.to_owned(), status.to_owned());
        let kind = match status {
            "paid" => "payment-link-paid",
            "expired" => "payment-link-expired",
            _ => return,
        };
        if let Some(j) = data.generator.mkp_link_index(link_id) {
            announce_mkp(&data, kind, j);
        }
    }

    /// Delivers webhooks for the changes made from now on, as `config` says (`None`: no more);
    /// deliveries already waiting are still made. Every change that adds an event to PayPro's
    /// `/events` (paying, refunding, charging back, inserting a payment, also the inserts of
    /// [`Faults::insert_every`]) is POSTed as that event, signed, to
    /// [`WebhookDelivery::paypro_url`]; MKP's `payment-link-paid` and `payment-link-expired`
    /// (see [`Sandbox::set_mkp_payment_status`], [`Sandbox::set_mkp_link_status`]) to
    /// [`WebhookDelivery::mkp_url`] as `{"type": …, "data": <the link>}`. Changes no provider
    /// announces stay silent ([`Sandbox::set_paypro_state`], [`Sandbox::set_paypro_amount`],
    /// [`Sandbox::add_mkp_payment`], [`Sandbox::complete_paypro_chargeback`]). Deliveries are
    /// made by a background task, in order unless [`WebhookDelivery::reorder`]; each attempt is
    /// logged ([`Sandbox::webhook_deliveries`]). Must be called within a Tokio runtime.
    pub fn set_webhooks(&self, config: Option<WebhookDelivery>) {
        let outbox = config.map(|config| {
            webhooks::start(
                config,
                self.shared.config.seed,
                format!("http://{}", self.addr),
                self.shared.deliveries.clone(),
            )
        });
        self.shared.data.write().expect("data lock").outbox = outbox;
    }

    /// Every webhook delivery attempt so far, in the order made (a dropped one too, marked).
    pub fn webhook_deliveries(&self) -> Vec<WebhookAttempt> {
        self.shared
            .deliveries
            .log
            .lock()
            .expect("webhook log lock")
            .clone()
    }

    /// Waits until every change made so far has been delivered (or dropped), at most `timeout`;
    /// whether it was.
    pub async fn wait_for_webhooks(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.shared.deliveries.pending.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Delivers PayPro's event `event_id` (any event of `/events`, generated or added) again, as
    /// a redelivery would; `false` when there is no such event or webhooks are off.
    pub fn deliver_paypro_event(&self, event_id: &str) -> bool {
        let data = self.shared.data.read().expect("data lock");
        let Some(outbox) = &data.outbox else {
            return false;
        };
        let Some(event) = data
            .paypro_events_after(None, usize::MAX)
            .and_then(|events| events.into_iter().find(|event| event.id == event_id))
        else {
            return false;
        };
        outbox.send(Outgoing::PayPro(event));
        true
    }

    /// Makes change number `n` of a demo's steady trickle, chosen from the seed and `n`: pays
    /// an unpaid PayPro payment, refunds part of a paid one, or pays a new payment through an
    /// open MKP link. Says what it did; `None` when the chosen change was not possible.
    pub fn churn(&self, n: u64) -> Option<String> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.shared.config.seed ^ 0xC4_0C4);
        rng.set_stream(7);
        rng.set_word_pos(u128::from(n) * 4);
        let choice = rng.next_u64() % 3;
        let pick = rng.next_u64();
        if choice < 2 {
            let payment = {
                let data = self.shared.data.read().expect("data lock");
                let count = data.paypro_count();
                (count > 0).then(|| data.paypro_at((pick % count as u64) as usize))?
            };
            if payment.paid_at.is_none() {
                let event = self.pay_paypro_payment(&payment.id)?;
                return Some(format!("paid PayPro payment {} ({event})", payment.id));
            }
            let left = payment.amount - payment.refunded_amount;
            let amount = (left / 4).max(1).min(left);
            let refund = self.refund_paypro_payment(&payment.id, amount)?;
            return Some(format!(
                "refunded {amount} cents of PayPro payment {} ({refund})",
                payment.id
            ));
        }
        let link = {
            let data = self.shared.data.read().expect("data lock");
            let open: Vec<MkpLink> = (0..data.link_count())
                .map(|j| data.link(j))
                .filter(|link| link.status == "open")
                .collect();
            (!open.is_empty()).then(|| open[(pick % open.len() as u64) as usize].clone())?
        };
        let payment = self.add_mkp_payment(&link.id)?;
        self.set_mkp_payment_status(&payment, "paid");
        Some(format!(
            "paid MKP payment {payment} through link {}",
            link.id
        ))
    }

    /// Adds a pending payment, created now, to a link; `None` for an unknown link.
    pub fn add_mkp_payment(&self, link_id: &str) -> Option<String> {
        self.shared
            .data
            .write()
            .expect("data lock")
            .add_mkp_payment(link_id, Utc::now())
    }

    /// Changes a PayPro payment's state and refunded amount (minor units), silently: no event
    /// says so, as with a change the provider does not announce (only re-reading the payment
    /// finds it).
    pub fn set_paypro_state(&self, payment_id: &str, state: &str, refunded_amount: i64) {
        let mut data = self.shared.data.write().expect("data lock");
        data.overlay
            .paypro_state
            .insert(payment_id.to_owned(), (state.to_owned(), refunded_amount));
    }

    /// Changes a PayPro payment's amount (minor units), as a provider's correction would,
    /// silently (no event).
    pub fn set_paypro_amount(&self, payment_id: &str, amount: i64) {
        let mut data = self.shared.data.write().expect("data lock");
        data.overlay
            .paypro_amount
            .insert(payment_id.to_owned(), amount);
    }

    /// Inserts a new open PayPro payment, created now, at the top of the list, and its
    /// `payment.created` event at the top of the feed.
    pub fn insert_paypro_payment(&self) -> String {
        self.shared
            .data
            .write()
            .expect("data lock")
            .insert_paypro(None, Utc::now())
    }

    /// Inserts a new PayPro payment at the top of the list (like
    /// [`Sandbox::insert_paypro_payment`]) with the given id, verbatim (it may hold any
    /// characters: `/`, `?`, `%`, spaces, control characters); returns it. `/payments/{id}`
    /// finds it by its percent-decoded path.
    pub fn insert_paypro_payment_with_id(&self, id: &str) -> String {
        self.shared
            .data
            .write()
            .expect("data lock")
            .insert_paypro(Some(id), Utc::now())
    }

    /// Serves a PayPro payment with this description and this payer name (`None` keeps what it
    /// has), wherever the PayPro wire format carries them, in every listing and by id: the
    /// description in the payment (`/payments`, `/payments/{id}`, and the payloads of its
    /// `payment.created` and `payment.paid` events). A PayPro payment has no payer name (the
    /// ledger maps none); the nearest is its customer, so `payer_name` is served as the `name`
    /// of the payment's customer in its `customer.created` event, when it has one. For tests of
    /// control characters in provider text. Refunds and chargebacks keep their own
    /// descriptions.
    pub fn set_paypro_text(
        &self,
        payment_id: &str,
        description: Option<&str>,
        payer_name: Option<&str>,
    ) {
        let mut data = self.shared.data.write().expect("data lock");
        if let Some(description) = description {
            data.overlay
                .paypro_description
                .insert(payment_id.to_owned(), description.to_owned());
        }
        if let Some(name) = payer_name
            && let Some(customer) = data.paypro_by_id(payment_id).and_then(|p| p.customer)
        {
            data.overlay
                .paypro_customer_name
                .insert(customer, name.to_owned());
        }
    }

    /// The same for MKP (`None` keeps what is there): serves the link with this description
    /// (`/payment-links`, `/payment-links/{id}`), and the payment `payment_id` with this
    /// `payersName` (a link's payments).
    pub fn set_mkp_text(
        &self,
        link_id: &str,
        link_description: Option<&str>,
        payment_id: Option<&str>,
        payers_name: Option<&str>,
    ) {
        let mut data = self.shared.data.write().expect("data lock");
        if let Some(description) = link_description {
            data.overlay
                .mkp_link_description
                .insert(link_id.to_owned(), description.to_owned());
        }
        if let (Some(payment_id), Some(name)) = (payment_id, payers_name) {
            data.overlay
                .mkp_payers_name
                .insert(payment_id.to_owned(), name.to_owned());
        }
    }

    /// One PayPro payment by id, as `GET /payments/{id}` serves it now (without the faults that
    /// spoil records); `None` for an unknown id.
    pub fn paypro_payment(&self, payment_id: &str) -> Option<PayProPayment> {
        self.shared
            .data
            .read()
            .expect("data lock")
            .paypro_by_id(payment_id)
    }

    /// PayPro's whole event feed, newest first, as served now (also the events that
    /// [`ContentFaults::paypro_events_kept`] hides).
    pub fn paypro_events(&self) -> Vec<PayProEvent> {
        let data = self.shared.data.read().expect("data lock");
        data.paypro_events_after(None, usize::MAX)
            .unwrap_or_default()
    }

    /// All PayPro refunds, newest first, as served now.
    pub fn paypro_refunds(&self) -> Vec<PayProRefund> {
        let data = self.shared.data.read().expect("data lock");
        data.paypro_refunds_after(None, usize::MAX)
            .unwrap_or_default()
    }

    /// All PayPro chargebacks, newest first, as served now.
    pub fn paypro_chargebacks(&self) -> Vec<PayProChargeback> {
        let data = self.shared.data.read().expect("data lock");
        data.paypro_chargebacks_after(None, usize::MAX)
            .unwrap_or_default()
    }

    /// All PayPro payouts, newest first, as served now (`/payouts`): those made at run time
    /// ([`Sandbox::add_paypro_payout`]) above the generated ones (see
    /// [`SandboxConfig::paypro_payout_spacing`]).
    pub fn paypro_payouts(&self) -> Vec<PayProPayout> {
        let data = self.shared.data.read().expect("data lock");
        data.paypro_payouts_after(None, usize::MAX)
            .unwrap_or_default()
    }

    /// One PayPro payout by id, as `GET /payouts/{id}` serves it now; `None` for an unknown id.
    pub fn paypro_payout(&self, payout_id: &str) -> Option<PayProPayout> {
        self.shared
            .data
            .read()
            .expect("data lock")
            .paypro_payout_by_id(payout_id)
    }

    /// PayPro's balance, as `GET /balances` serves it now: in EUR, exactly the payments that
    /// brought money in (state `paid`, `completed`, `refunded`, `chargeback` or `chargebacked`,
    /// any case: what the ledger's status table reads as paid, partially refunded, refunded or
    /// charged back), less every refund not failed or canceled, every completed chargeback and
    /// every payout's `amount + fee_amount + fee_vat_amount` unless it was rejected or failed,
    /// over the whole data set and everything changed at run time. A chargeback in another
    /// currency ([`Sandbox::add_paypro_chargeback`]) is not in it. `pending_amount` is 0.
    pub fn paypro_balance(&self) -> PayProBalance {
        self.shared.data.read().expect("data lock").paypro_balance()
    }

    /// Refunds `amount` minor units of a paid PayPro payment as made at `at`, which may be
    /// long past (never before the payment's `paid_at`): a completed refund with `created_at`
    /// and `refunded_at` at `at`, as [`Sandbox::refund_paypro_payment`] makes one now. The
    /// payment's `refunded_amount` grows by it wherever it is served (`/payments`,
    /// `/payments/{id}`; its `state` stays, so the ledger reads it partially or fully
    /// refunded), the refund is in `/refunds` and `/payments/{id}/refunds`, its
    /// `refund.created` event (made at `at`) is in `/events` and is sent as a webhook when
    /// they are on, and `/balances` is less by `amount`. The refund and the event are placed
    /// among the items added at run time by their time, above the generated ones: a late
    /// refund tops both listings unless a newer one was added. Returns the refund's id; `None`,
    /// and nothing changes, for an unknown or unpaid payment, a time before it was paid, or an
    /// amount that is not from 1 to what is left to refund.
    pub fn refund_paypro_payment_at(
        &self,
        payment_id: &str,
        amount: i64,
        at: DateTime<Utc>,
    ) -> Option<String> {
        self.shared
            .data
            .write()
            .expect("data lock")
            .refund_paypro_at(payment_id, amount, at)
    }

    /// Makes a PayPro payout now of `amount` minor units to the account's bank account, with
    /// `fee_amount` and `fee_vat_amount` withheld: state `created`, on top of `/payouts`, its
    /// `payout.created` event on top of `/events` (sent as a webhook when they are on), and
    /// `/balances` less by the three. Returns its id (`PONEW…`); `None`, and nothing changes,
    /// for an amount below 1, a negative fee or VAT, or a total over the balance now.
    pub fn add_paypro_payout(
        &self,
        amount: i64,
        fee_amount: i64,
        fee_vat_amount: i64,
    ) -> Option<String> {
        self.shared
            .data
            .write()
            .expect("data lock")
            .add_paypro_payout(amount, fee_amount, fee_vat_amount, Utc::now())
    }

    /// Moves a payout made by [`Sandbox::add_paypro_payout`] on to `state` now: `approved`,
    /// `paid` (with `paid_at` now), `rejected` or `failed` (the balance gets its total back),
    /// with its `payout.{state}` event on top of `/events`. Returns the event's id; `None`, and
    /// nothing changes, for an unknown or generated payout, another word, or a payout already
    /// paid, rejected or failed.
    pub fn set_paypro_payout_state(&self, payout_id: &str, state: &str) -> Option<String> {
        self.shared
            .data
            .write()
            .expect("data lock")
            .set_paypro_payout_state(payout_id, state, Utc::now())
    }

    /// Refunds `amount` minor units of a paid PayPro payment now, as a late refund would: the
    /// payment's `refunded_amount` grows by it wherever it is served (`/payments`,
    /// `/payments/{id}`; its `state` stays), a completed refund tops `/refunds`, and its
    /// `refund.created` event tops `/events`. Returns the refund's id; `None`, and nothing
    /// changes, for an unknown or unpaid payment, or an amount that is not from 1 to what is
    /// left to refund.
    pub fn refund_paypro_payment(&self, payment_id: &str, amount: i64) -> Option<String> {
        self.shared
            .data
            .write()
            .expect("data lock")
            .refund_paypro(payment_id, amount, Utc::now())
    }

    /// Charges back `amount` minor units of a paid PayPro payment now, as a late chargeback
    /// would: a chargeback (state `completed`, or `processing` when not `completed`) tops
    /// `/chargebacks`, and its `chargeback.created` event tops `/events`. The payment itself is
    /// served unchanged: PROVIDERS.md does not say that a chargeback changes its `state`.
    /// Returns the chargeback's id; `None`, and nothing changes, for an unknown or unpaid
    /// payment, or an amount that is not from 1 to the payment's amount.
    pub fn charge_back_paypro_payment(
        &self,
        payment_id: &str,
        amount: i64,
        completed: bool,
    ) -> Option<String> {
        self.shared
            .data
            .write()
            .expect("data lock")
            .charge_back_paypro(payment_id, amount, completed, Utc::now())
    }

    /// Adds a chargeback and its `chargeback.created` event as `spec` says (reason `MD06`; the
    /// payment itself is served unchanged); its id, or `None` for an unknown payment. Unlike
    /// [`Sandbox::charge_back_paypro_payment`], nothing is checked: any amount, any currency, an
    /// unpaid payment. With [`ChargebackSpec::at`] in the past, both are listed (`/chargebacks`,
    /// `/events`) below the items added at run time after that time.
    pub fn add_paypro_chargeback(&self, spec: ChargebackSpec) -> Option<String> {
        self.shared
            .data
            .write()
            .expect("data lock")
            .add_paypro_chargeback(
                &spec.payment_id,
                spec.amount,
                spec.currency.as_deref(),
                spec.completed,
                spec.at.unwrap_or_else(Utc::now),
            )
    }

    /// Changes a chargeback added at run time ([`Sandbox::add_paypro_chargeback`],
    /// [`Sandbox::charge_back_paypro_payment`]), silently (no event; its `chargeback.created`
    /// event keeps what it said): its amount and currency (None keeps it). `false` for an
    /// unknown id.
    pub fn correct_paypro_chargeback(
        &self,
        chargeback_id: &str,
        amount: i64,
        currency: Option<&str>,
    ) -> bool {
        self.shared
            .data
            .write()
            .expect("data lock")
            .correct_paypro_chargeback(chargeback_id, amount, currency)
    }

    /// Completes a chargeback added by [`Sandbox::charge_back_paypro_payment`] now, with no event
    /// (PayPro documents only `chargeback.created`): only `/chargebacks` shows it. `false` for an
    /// unknown or already completed chargeback.
    pub fn complete_paypro_chargeback(&self, chargeback_id: &str) -> bool {
        self.shared
            .data
            .write()
            .expect("data lock")
            .complete_paypro_chargeback(chargeback_id, Utc::now())
    }

    /// Pays an unpaid PayPro payment now: it is served with state `paid` and `paid_at` now, and
    /// a `payment.paid` event carrying it tops `/events`. Returns the event's id; `None`, and
    /// nothing changes, for an unknown or already paid payment.
    pub fn pay_paypro_payment(&self, payment_id: &str) -> Option<String> {
        self.shared
            .data
            .write()
            .expect("data lock")
            .pay_paypro(payment_id, Utc::now())
    }

    /// The newest generated PayPro payment created at least `age` before the anchor that is
    /// paid (`paid` or `completed`) with nothing refunded, as served now: one a late refund or
    /// chargeback can hit. `None` when the data set does not reach back that far; make it reach
    /// with [`SandboxConfig::paypro_spacing`] (a day's spacing and 300 payments span 300 days).
    pub fn old_paid_paypro_payment(&self, age: Duration) -> Option<PayProPayment> {
        let age = chrono::Duration::from_std(age).ok()?;
        self.shared
            .data
            .read()
            .expect("data lock")
            .old_paid_paypro(age)
    }
}

/// The index of the link an MKP payment id (`plp_{link:06}…`, `plp_new{link:06}…`) belongs to.
fn mkp_link_of_payment(payment_id: &str) -> Option<usize> {
    let rest = payment_id.strip_prefix("plp_")?;
    let rest = rest.strip_prefix("new").unwrap_or(rest);
    rest.get(..6)?.parse().ok()
}

/// Announces link `j`, as served now, as an MKP webhook of `kind`, when webhooks are on.
fn announce_mkp(data: &Data, kind: &'static str, j: usize) {
    if let Some(outbox) = &data.outbox {
        outbox.send(Outgoing::Mkp {
            kind,
            link: data.link(j),
        });
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Ok(mut data) = self.shared.data.write() {
            data.outbox = None;
        }
        let _ = self.shutdown.send(true);
    }
}
