//! The boundary between providers and the sync engine: [`PaymentSource`] fetches one page.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::{BookKind, BookRecord, Money, Payment, Rejected};

/// A source of payments that fetches *one page* at a time and says where to go next.
///
/// It never loops: paging, retries, rate-limit waits and every incremental decision belong to
/// the caller (the `payments-sync` crate). A source may have a top-level listing (PayPro's
/// payments, MKP's payment links) whose items open *groups* with listings of their own (an MKP
/// link's payments). The [`Cursor`] spans both, so a checkpoint can resume anywhere.
///
/// A source *declares* what the caller's policy needs, so nobody pairs it with its limits by
/// hand: its [`RateLimit`], the [`ListingOrder`] of its top-level listing, and (with
/// [`ListingOrder::Groups`]) that it has sub-listings. A page fetched at a cursor whose
/// [`Cursor::groups`] is not empty lists the payments of the first of those groups.
#[async_trait]
pub trait PaymentSource: Send + Sync {
    /// A stable key for checkpoints, such as `"mkp"` or `"paypro"`.
    fn name(&self) -> &str;

    /// The order of the top-level listing, which decides how an incremental run may stop early,
    /// and whether the source has sub-listings ([`ListingOrder::Groups`]).
    fn order(&self) -> ListingOrder;

    /// How many requests the provider allows per window for this source's credential; `None`
    /// when it documents no limit. The caller paces every request by it.
    fn rate_limit(&self) -> Option<RateLimit> {
        None
    }

    /// Fetches the page at `cursor` (`None`: the first page of the top-level listing).
    ///
    /// Each call makes at most one request to the provider.
    async fn page(&self, cursor: Option<&Cursor>) -> Result<Page, SourceError>;

    /// Whether the source has a change feed ([`PaymentSource::changes`] and
    /// [`PaymentSource::payment`]); `false` by default.
    fn has_change_feed(&self) -> bool {
        false
    }

    /// Fetches the page of the change feed at `cursor` (`None`: the newest changes), newest
    /// first. Sources without a feed answer an empty last page. At most one request.
    async fn changes(&self, _cursor: Option<&Cursor>) -> Result<ChangePage, SourceError> {
        Ok(ChangePage::default())
    }

    /// Fetches the page at `cursor` of the provider's chargebacks (`None`: the newest), newest
    /// first, each as a [`ChangeKind::ChargedBack`] change: what a ledger reads once to learn
    /// the chargebacks no change of its feed announced (before its first read of the feed, or in
    /// a gap of it). Sources without one answer an empty last page. At most one request.
    async fn chargebacks(&self, _cursor: Option<&Cursor>) -> Result<ChangePage, SourceError> {
        Ok(ChangePage::default())
    }

    /// Fetches one payment by the provider's id, as the provider reports it now: `None` when
    /// the provider does not know it (or the source cannot ask). At most one request.
    async fn payment(&self, _source_id: &str) -> Result<OnePayment, SourceError> {
        Ok(OnePayment::default())
    }

    /// Fetches one group (an MKP payment link) by the provider's id, as the provider reports it
    /// now: `None` when the provider does not know it (or the source has no groups). Its
    /// payments are then read from a [`Cursor`] with no listing and this group alone in
    /// [`Cursor::groups`]. At most one request.
    async fn group(&self, _group_id: &str) -> Result<OneGroup, SourceError> {
        Ok(OneGroup::default())
    }

    /// The kinds of [`BookRecord`] the source lists (PayPro: refunds, chargebacks, payouts),
    /// each read with [`PaymentSource::book_page`]; none by default.
    fn book_kinds(&self) -> &'static [BookKind] {
        &[]
    }

    /// Fetches the page at `cursor` (`None`: the newest) of the provider's listing of `kind`,
    /// newest first. Sources without one answer an empty last page. At most one request.
    async fn book_page(
        &self,
        _kind: BookKind,
        _cursor: Option<&Cursor>,
    ) -> Result<BookPage, SourceError> {
        Ok(BookPage::default())
    }

    /// The provider's balances as it reports them now, one per currency (PayPro's
    /// `/balances`); `None` when the source has no balance to ask. At most one request.
    async fn balances(&self) -> Result<Option<Balances>, SourceError> {
        Ok(None)
    }
}

/// One page of a listing of [`BookRecord`]s.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BookPage {
    /// The records that mapped, in the provider's order.
    pub records: Vec<BookRecord>,
    /// The records that did not, kept whole with the reason.
    pub rejected: Vec<Rejected>,
    /// Where the listing continues; `None` after its last page.
    pub next: Option<Cursor>,
    /// What the response said about the rate limit.
    pub rate_limit: RateLimitHeaders,
}

/// A provider's balance in one currency, as it reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Balance {
    /// What the balance holds (PROVIDERS.md: paid payments − refunds − completed chargebacks −
    /// payouts with their fees, over the account's life).
    pub amount: Money,
    /// What is on its way and not yet in `amount`, when the provider says.
    pub pending: Option<Money>,
}

/// What [`PaymentSource::balances`] answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Balances {
    /// One per currency.
    pub balances: Vec<Balance>,
    /// What the response said about the rate limit.
    pub rate_limit: RateLimitHeaders,
}

/// One group asked for by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OneGroup {
    /// The group (or its record, when it cannot be read); `None` when it is unknown.
    pub group: Option<Result<Group, Rejected>>,
    /// What the response said about the rate limit.
    pub rate_limit: RateLimitHeaders,
}

/// A page of a change feed, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangePage {
    /// The changes on this page that could be read, newest first.
    pub changes: Vec<Change>,
    /// The entries that could not be read, kept whole with the reason.
    pub rejected: Vec<Rejected>,
    /// Where the feed continues (older changes); `None` on its last page.
    pub next: Option<Cursor>,
    /// What the response said about the rate limit.
    pub rate_limit: RateLimitHeaders,
}

/// One change a provider's feed reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The feed's id for it (PayPro: the event id): where a reader of the feed stands.
    pub id: String,
    /// When the provider recorded it.
    pub at: DateTime<FixedOffset>,
    /// What it says.
    pub kind: ChangeKind,
    /// The refund, chargeback or payout it carries, as it was at the change, for the ledger's
    /// books (the book listings' walk confirms it later).
    pub record: Option<crate::BookRecord>,
}

/// What a change says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A payment, as it was at the change.
    Payment(Box<Payment>),
    /// The payment with this provider id changed in a way its own record shows (a refund):
    /// read it again.
    Touched {
        /// The payment's provider id.
        source_id: String,
    },
    /// A chargeback of the payment with this provider id. A completed one makes the payment
    /// `charged_back` (see [`Payment::charged_back_amount`]).
    ChargedBack {
        /// The payment's provider id.
        source_id: String,
        /// The payment's unified id, as [`Payment::id`] has it.
        payment_id: String,
        /// How much was charged back.
        amount: Money,
        /// Whether the chargeback is completed.
        completed: bool,
        /// The provider's id of the chargeback itself (PayPro: `PC…`): what a chargeback that
        /// cannot be applied is quarantined as.
        chargeback_id: String,
        /// The chargeback as the provider described it (its fields as JSON), kept with the
        /// reason when it is quarantined.
        record: String,
    },
    /// Anything else the feed carries (payouts, customers, a type nobody knows yet): counted
    /// and ignored, never an error.
    Other {
        /// The provider's word for it.
        kind: String,
    },
}

/// One payment asked for by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnePayment {
    /// The payment (or its record, when it cannot be mapped); `None` when it is unknown.
    pub payment: Option<Result<Payment, Rejected>>,
    /// What the response said about the rate limit.
    pub rate_limit: RateLimitHeaders,
}

/// The order of a source's top-level listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListingOrder {
    /// Payments, most recent `created_at` first (PayPro): paging can stop past a horizon.
    NewestFirst,
    /// Groups with sub-listings, in an undocumented order (MKP links, each listing its own
    /// payments): every listing page must be read, and the caller decides per group whether to
    /// read its payments.
    Groups,
}

/// Where a source's walk continues. Serializable: this is what a checkpoint stores.
///
/// The source fills it; the caller treats `listing` and `group_page` as opaque and may only
/// drop entries from `groups` (to skip reading a group's payments).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor {
    /// Where the top-level listing continues; `None` once it has no further pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<String>,
    /// Groups found on listing pages already read whose payments are still to be read, in
    /// order. The first one is read next, from `group_page`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    /// Where the first group's payment listing continues; `None` for its first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_page: Option<String>,
}

impl Cursor {
    /// Whether nothing is left to read: no listing pages and no groups.
    pub fn is_exhausted(&self) -> bool {
        self.listing.is_none() && self.groups.is_empty()
    }
}

/// A sub-listing of a source (an MKP payment link) as the listing described it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Group {
    /// The provider's id (`plk_…`).
    pub id: String,
    /// The provider's status word for the group (`open`, `paid`, `expired`, `closed`).
    pub status: String,
    /// Whether payments can still be made through it (the provider's judgement, not the caller's).
    pub open: bool,
    /// Its description, carried onto its payments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<FixedOffset>>,
}

/// One fetched page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The payments on this page that mapped.
    pub payments: Vec<Payment>,
    /// The records on this page that did not map, kept whole with the reason.
    pub rejected: Vec<Rejected>,
    /// Groups listed on this page (a page of MKP links); they are also queued in `next`.
    pub groups: Vec<Group>,
    /// Where to continue; `None` when this was the last page of the whole walk.
    pub next: Option<Cursor>,
    /// What the response said about the rate limit.
    pub rate_limit: RateLimitHeaders,
}

/// A provider's rate limit: at most `limit` requests in any rolling `window` for one credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in any window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

impl RateLimit {
    /// `limit` requests per `window`.
    pub const fn per(limit: u32, window: Duration) -> RateLimit {
        RateLimit { limit, window }
    }
}

/// What a response said about the rate limit of the credential (all optional: PayPro says nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitHeaders {
    /// `X-RateLimit-Limit`: requests allowed per window.
    pub limit: Option<u32>,
    /// `X-RateLimit-Remaining`: requests left in the current window.
    pub remaining: Option<u32>,
    /// `X-RateLimit-Reset`: when the window resets, as a unix timestamp (seconds).
    pub reset: Option<i64>,
}

/// What went wrong fetching a page, classified for the caller's policy (retry or not, wait how
/// long, what to tell the user). Messages never contain an API key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// 401 or 403: the key is wrong or lacks a scope. Not retryable.
    #[error("{provider} refused the API key (HTTP {status}): {advice}")]
    Auth {
        /// The provider (`MijnKlantportaal`, `PayPro`).
        provider: &'static str,
        /// 401 or 403.
        status: u16,
        /// What to do, naming the key's variable and the scope needed.
        advice: String,
    },
    /// 404: the resource does not exist. Not retryable.
    #[error("{provider} has no {what} (HTTP 404)")]
    NotFound {
        /// The provider.
        provider: &'static str,
        /// What was asked for.
        what: String,
    },
    /// 400 or 422: the provider refused the request as invalid. Not retryable.
    #[error("{provider} refused the request (HTTP {status}): {message}")]
    Invalid {
        /// The provider.
        provider: &'static str,
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// 429: too many requests. Retryable after `retry_after`.
    #[error("{provider} is rate limiting this key (HTTP 429){}", WaitHint(*retry_after))]
    RateLimited {
        /// The provider.
        provider: &'static str,
        /// How long the provider asked to wait (`Retry-After` or `X-RateLimit-Reset`).
        retry_after: Option<Duration>,
        /// The rate-limit headers of the response.
        rate_limit: RateLimitHeaders,
    },
    /// 5xx: the provider failed. Retryable.
    #[error("{provider} failed (HTTP {status}){}: {excerpt}", WaitHint(*retry_after))]
    Server {
        /// The provider.
        provider: &'static str,
        /// The HTTP status.
        status: u16,
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
        /// The start of the body.
        excerpt: String,
    },
    /// The connection failed, timed out, was reset, or the body ended early. Retryable.
    #[error("{provider}: {kind}: {message}")]
    Transport {
        /// The provider.
        provider: &'static str,
        /// What kind of failure.
        kind: TransportKind,
        /// Details.
        message: String,
    },
    /// The response was not what the API documents (not JSON, not the envelope). Not retryable.
    #[error(
        "{provider} sent an unexpected response (HTTP {status}): {problem}; the body starts with: {excerpt}"
    )]
    BadResponse {
        /// The provider.
        provider: &'static str,
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        problem: String,
        /// The start of the body (never the key).
        excerpt: String,
    },
    /// A guard refused to go on: a next link to another origin or another listing, plain http
    /// off loopback, a redirect. Not retryable.
    #[error("refused: {0}")]
    Refused(String),
    /// The response body was over the client's size cap, so it was not read. Not retryable: the
    /// same request gets the same body; a source may ask for a smaller page instead (PayPro's
    /// `limit`) or set the sub-listing aside.
    #[error(
        "refused: {provider} sent a response body over the cap of {cap} bytes for {what}; raise the body cap if such a page is expected"
    )]
    BodyTooLarge {
        /// The provider.
        provider: &'static str,
        /// The cap, in bytes.
        cap: usize,
        /// What was asked for (the request's path and query below the base URL).
        what: String,
    },
    /// The cursor given cannot be used by this source (a checkpoint from another version or
    /// source). Not retryable.
    #[error("cannot resume from this cursor: {0}")]
    BadCursor(String),
}

/// The kinds of [`SourceError::Transport`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    /// No answer in time.
    Timeout,
    /// Could not connect, or the connection was reset.
    Connection,
    /// The body ended before it was complete.
    Truncated,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Timeout => "request timed out",
            TransportKind::Connection => "connection failed",
            TransportKind::Truncated => "response body was cut short",
        })
    }
}

impl SourceError {
    /// Whether trying the same request again may succeed (429, 5xx, transport failures).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SourceError::RateLimited { .. }
                | SourceError::Server { .. }
                | SourceError::Transport { .. }
        )
    }

    /// How long the provider asked to wait before trying again, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SourceError::RateLimited { retry_after, .. }
            | SourceError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the credential is at fault (401/403): the user must fix the key.
    pub fn is_auth(&self) -> bool {
        matches!(self, SourceError::Auth { .. })
    }
}

struct WaitHint(Option<Duration>);

impl fmt::Display for WaitHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(wait) => write!(f, "; retry after {:.1}s", wait.as_secs_f64()),
            None => Ok(()),
        }
    }
}
