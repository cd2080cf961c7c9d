//! The HTTP client for PayPro's payment list, and [`PayProSource`] over it.

use async_trait::async_trait;
use payments_http::{ApiClient, ApiKey, ClientConfig, ConfigError, Fetched, ListPage, Provider};
use payments_model::{
    Balance, Balances, BookKind, BookPage, BookRecord, Change, ChangeKind, ChangePage, Cursor,
    ListingOrder, OnePayment, Page, Payment, PaymentSource, RateLimitHeaders, Rejected,
    SourceError,
};
use serde::Deserialize;

use crate::books::{Payout, decode_balances, decode_payout, decode_payouts_page};
use crate::decode_page;
use crate::feed::{
    Chargeback, DecodedPage, Event, EventPayload, Refund, decode_chargebacks_page,
    decode_events_page, decode_payment, decode_refunds_page,
};

/// PayPro's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.paypro.nl";

/// PayPro's test environment.
pub const TEST_BASE_URL: &str = "https://api-test.paypro.nl";

/// The page size used by default: the API's maximum (the official clients default to 10).
pub const DEFAULT_LIMIT: u8 = 100;

/// The `User-Agent` of every request: this library and its version.
pub const USER_AGENT: &str = concat!(
    env!("CARGO_PKG_NAME"),
    "/",
    env!("CARGO_PKG_VERSION"),
    " (payments-ledger)"
);

static PAYPRO: Provider = Provider {
    name: "PayPro",
    key_variable: "PAYPRO_API_KEY",
    forbidden_advice: "the key may not list payments; use an API key of the account with access to payments",
    error_message,
};

/// PayPro's error body: `{"error": {"message": "…", "param": "…", "type": "…"}}`.
fn error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Body {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        message: Option<String>,
        param: Option<String>,
    }
    let detail = serde_json::from_slice::<Body>(body).ok()?.error;
    match (detail.message, detail.param) {
        (Some(message), Some(param)) => Some(format!("{message} (parameter `{param}`)")),
        (message, _) => message,
    }
}

/// A client for PayPro's `GET /payments`, most recent first, `limit` per page (100 by default),
/// following `_links.next`; and for its change feeds `GET /events`, `/refunds` and
/// `/chargebacks` (same envelope and paging), and `GET /payments/{id}`.
#[derive(Debug)]
pub struct PayProClient {
    api: ApiClient,
    limit: u8,
}

impl PayProClient {
    /// A client of the production API with the default limits.
    pub fn new(api_key: impl Into<ApiKey>) -> Result<PayProClient, ConfigError> {
        PayProClient::with_config(PayProClient::config(DEFAULT_BASE_URL, api_key))
    }

    /// The default configuration for `base_url`, to adjust before [`PayProClient::with_config`].
    pub fn config(base_url: &str, api_key: impl Into<ApiKey>) -> ClientConfig {
        ClientConfig::new(base_url, api_key, USER_AGENT)
    }

    /// A client with a custom configuration (base URL, timeouts, body cap).
    pub fn with_config(config: ClientConfig) -> Result<PayProClient, ConfigError> {
        Ok(PayProClient {
            api: ApiClient::new(&PAYPRO, config)?,
            limit: DEFAULT_LIMIT,
        })
    }

    /// Sets the page size, 1 to 100 (values outside are clamped: the API refuses them).
    pub fn with_limit(mut self, limit: u8) -> PayProClient {
        self.limit = limit.clamp(1, 100);
        self
    }

    /// The base URL in use.
    pub fn base_url(&self) -> &str {
        self.api.base_url().as_str()
    }

    /// The page size asked for, 1 to 100.
    pub fn limit(&self) -> u8 {
        self.limit
    }

    /// The address of the first page, with this client's `limit`.
    fn first_page(&self) -> String {
        self.first_page_of("payments")
    }

    /// The address of the first page of `listing` (`events`), with this client's `limit`.
    fn first_page_of(&self, listing: &str) -> String {
        format!("/{listing}?limit={}", self.limit)
    }

    /// `GET /{listing}` at `page` (`None`: the first page), decoded with `decode`, with where
    /// the listing continues, checked against the origin and the listing.
    async fn list_page<T>(
        &self,
        listing: &str,
        page: Option<&str>,
        decode: fn(&[u8]) -> Result<DecodedPage<T>, serde_json::Error>,
    ) -> Result<Fetched<ListPage<T>>, SourceError> {
        let first = self.first_page_of(listing);
        let request = page.unwrap_or(&first);
        let fetched = self.api.get(request).await?;
        let decoded =
            decode(&fetched.value).map_err(|e| self.api.decode_error(&e, &fetched.value))?;
        let next = decoded
            .links
            .next
            .as_deref()
            .map(|next| self.api.relative_next(request, next))
            .transpose()?;
        Ok(Fetched {
            value: ListPage {
                items: decoded.items,
                rejected: decoded.rejected,
                next,
            },
            rate_limit: fetched.rate_limit,
        })
    }

    /// `GET /events`: the page at `page` (relative to the base URL, as a previous page's `next`
    /// gave it; `None`: the first page, the newest events, with this client's `limit`), newest
    /// first, with where the feed continues (older events).
    ///
    /// Each event is mapped on its own, its payload by the payload's own `type`: a payment as
    /// the listing maps it, a [`Refund`], a [`Chargeback`], or [`crate::EventPayload::Other`]
    /// for anything else (an unknown event or payload type is never an error). An event that
    /// cannot be mapped is set aside whole with its reason, naming the event and the field
    /// (`payload.amount`); the rest of the page is kept.
    pub async fn events_page(
        &self,
        page: Option<&str>,
    ) -> Result<Fetched<EventsPage>, SourceError> {
        let fetched = self.list_page("events", page, decode_events_page).await?;
        Ok(fetched)
    }

    /// `GET /refunds`: the page at `page` (`None`: the first page, the newest refunds), newest
    /// first, each refund mapped on its own (one that cannot be is set aside whole with its
    /// reason), with where the listing continues.
    pub async fn refunds_page(
        &self,
        page: Option<&str>,
    ) -> Result<Fetched<RefundsPage>, SourceError> {
        let fetched = self.list_page("refunds", page, decode_refunds_page).await?;
        Ok(fetched)
    }

    /// `GET /chargebacks`: the page at `page` (`None`: the first page, the newest
    /// chargebacks), newest first, each chargeback mapped on its own (one that cannot be is set
    /// aside whole with its reason), with where the listing continues.
    pub async fn chargebacks_page(
        &self,
        page: Option<&str>,
    ) -> Result<Fetched<ChargebacksPage>, SourceError> {
        let fetched = self
            .list_page("chargebacks", page, decode_chargebacks_page)
            .await?;
        Ok(fetched)
    }

    /// `GET /payouts`: the page at `page` (`None`: the first page, the newest payouts), newest
    /// first, each payout mapped on its own (one that cannot be is set aside whole with its
    /// reason, naming the field), with where the listing continues.
    pub async fn payouts_page(
        &self,
        page: Option<&str>,
    ) -> Result<Fetched<PayoutsPage>, SourceError> {
        let fetched = self.list_page("payouts", page, decode_payouts_page).await?;
        Ok(fetched)
    }

    /// `GET /payouts/{id}`: one payout by PayPro's id (`PO…`), mapped as the listing maps it:
    /// `Some(Ok(payout))`; `Some(Err(rejected))` when it cannot be mapped; `None` when PayPro
    /// answers 404.
    ///
    /// An id that cannot be sent in a URL path as it is is refused before any request, with
    /// [`SourceError::Refused`] naming the id. An answer about another payout than the one
    /// asked for is a [`SourceError::BadResponse`].
    pub async fn payout(
        &self,
        id: &str,
    ) -> Result<Fetched<Option<Result<Payout, Rejected>>>, SourceError> {
        payments_http::path_segment(id).map_err(|problem| {
            SourceError::Refused(format!("{} payout id {problem}", self.api.provider().name))
        })?;
        let fetched = match self.api.get(&format!("/payouts/{id}")).await {
            Ok(fetched) => fetched,
            Err(SourceError::NotFound { .. }) => {
                return Ok(Fetched {
                    value: None,
                    rate_limit: RateLimitHeaders::default(),
                });
            }
            Err(error) => return Err(error),
        };
        let value =
            decode_payout(&fetched.value).map_err(|e| self.api.decode_error(&e, &fetched.value))?;
        if let Ok(payout) = &value
            && payout.id != id
        {
            return Err(SourceError::BadResponse {
                provider: self.api.provider().name,
                status: 200,
                problem: format!(
                    "asked for payout `{id}`, the answer is payout `{}`",
                    payout.id.escape_default()
                ),
                excerpt: String::new(),
            });
        }
        Ok(Fetched {
            value: Some(value),
            rate_limit: fetched.rate_limit,
        })
    }

    /// `GET /balances`: the account's balances, one per currency, each mapped on its own (one
    /// that cannot be is set aside whole with its reason). The shape is unconfirmed: the list
    /// envelope of `{"type": "balance", "currency": "EUR", "amount": 123456, "pending_amount":
    /// 0}`, amounts in cents. A `_links.next`, should there be one, is checked and given as
    /// for any listing.
    pub async fn balances(&self) -> Result<Fetched<BalancesPage>, SourceError> {
        let fetched = self.api.get("/balances").await?;
        let decoded = decode_balances(&fetched.value)
            .map_err(|e| self.api.decode_error(&e, &fetched.value))?;
        let next = decoded
            .links
            .next
            .as_deref()
            .map(|next| self.api.relative_next("/balances", next))
            .transpose()?;
        Ok(Fetched {
            value: ListPage {
                items: decoded.items,
                rejected: decoded.rejected,
                next,
            },
            rate_limit: fetched.rate_limit,
        })
    }

    /// `GET /payments/{id}`: one payment by PayPro's id (`PP…`), mapped as the listing maps
    /// it: `Some(Ok(payment))`; `Some(Err(rejected))` when it cannot be mapped (kept whole with
    /// the reason, like a bad record of a page); `None` when PayPro answers 404 (there is no
    /// such payment).
    ///
    /// An id that cannot be sent in a URL path as it is (empty, or holding anything but
    /// letters, digits, `_` and `-`) is refused before any request, with
    /// [`SourceError::Refused`] naming the id. An answer about another payment than the one
    /// asked for is a [`SourceError::BadResponse`].
    pub async fn payment(
        &self,
        id: &str,
    ) -> Result<Fetched<Option<Result<Payment, Rejected>>>, SourceError> {
        payments_http::path_segment(id).map_err(|problem| {
            SourceError::Refused(format!("{} payment id {problem}", self.api.provider().name))
        })?;
        let fetched = match self.api.get(&format!("/payments/{id}")).await {
            Ok(fetched) => fetched,
            Err(SourceError::NotFound { .. }) => {
                return Ok(Fetched {
                    value: None,
                    rate_limit: RateLimitHeaders::default(),
                });
            }
            Err(error) => return Err(error),
        };
        let value = decode_payment(&fetched.value)
            .map_err(|e| self.api.decode_error(&e, &fetched.value))?;
        if let Ok(payment) = &value
            && payment.source_id != id
        {
            return Err(SourceError::BadResponse {
                provider: self.api.provider().name,
                status: 200,
                problem: format!(
                    "asked for payment `{id}`, the answer is payment `{}`",
                    payment.source_id.escape_default()
                ),
                excerpt: String::new(),
            });
        }
        Ok(Fetched {
            value: Some(value),
            rate_limit: fetched.rate_limit,
        })
    }

    /// `GET /payments`: the page at `page` (relative to the base URL; `None`: the first page,
    /// with this client's `limit`), mapped, with where the listing continues. A record that
    /// cannot be mapped is set aside whole with its reason.
    pub async fn payments_page(
        &self,
        page: Option<&str>,
    ) -> Result<Fetched<PaymentsPage>, SourceError> {
        let first = self.first_page();
        let request = page.unwrap_or(&first);
        let fetched = self.api.get(request).await?;
        let (links, mapped) =
            decode_page(&fetched.value).map_err(|e| self.api.decode_error(&e, &fetched.value))?;
        let next = links
            .next
            .as_deref()
            .map(|next| self.api.relative_next(request, next))
            .transpose()?;
        Ok(Fetched {
            value: PaymentsPage {
                items: mapped.payments,
                rejected: mapped.rejected,
                next,
            },
            rate_limit: fetched.rate_limit,
        })
    }
}

/// A page of payments, as [`PayProClient::payments_page`] maps it; `next` carries PayPro's
/// opaque cursor, and a `_links.next` on another origin is refused.
pub type PaymentsPage = ListPage<Payment>;

/// A page of events, as [`PayProClient::events_page`] maps it, newest first; `next` leads to
/// older events, and a `_links.next` on another origin or listing is refused.
pub type EventsPage = ListPage<Event>;

/// A page of refunds, as [`PayProClient::refunds_page`] maps it, newest first.
pub type RefundsPage = ListPage<Refund>;

/// A page of chargebacks, as [`PayProClient::chargebacks_page`] maps it, newest first.
pub type ChargebacksPage = ListPage<Chargeback>;

/// A page of payouts, as [`PayProClient::payouts_page`] maps it, newest first.
pub type PayoutsPage = ListPage<Payout>;

/// The balances, as [`PayProClient::balances`] maps them, one per currency.
pub type BalancesPage = ListPage<Balance>;

/// PayPro's payments as a [`PaymentSource`], newest first. The cursor is the next page's
/// address below the base URL (carrying PayPro's opaque `cursor`).
///
/// A page whose body is over the client's cap is asked for again with half the `limit`: the
/// page at that cursor is then empty, and its next cursor is the same position with the smaller
/// limit (so each call still makes one request, and the engine sees a new cursor). Once a
/// smaller page is read, the walk goes on with full pages again. Only a single payment over the
/// cap (`limit=1`) fails, with [`SourceError::BodyTooLarge`].
#[derive(Debug)]
pub struct PayProSource {
    client: PayProClient,
}

impl PayProSource {
    /// A source over `client`.
    pub fn new(client: PayProClient) -> PayProSource {
        PayProSource { client }
    }

    /// The client underneath.
    pub fn client(&self) -> &PayProClient {
        &self.client
    }
}

#[async_trait]
impl PaymentSource for PayProSource {
    fn name(&self) -> &str {
        "paypro"
    }

    fn order(&self) -> ListingOrder {
        ListingOrder::NewestFirst
    }

    async fn page(&self, cursor: Option<&Cursor>) -> Result<Page, SourceError> {
        let Some(request) = self.request("payments", cursor) else {
            return Ok(Page::default());
        };
        let fetched = match within_cap(&request, self.client.payments_page(Some(&request))).await? {
            Ok(fetched) => fetched,
            Err(smaller) => {
                return Ok(Page {
                    next: Some(smaller),
                    ..Page::default()
                });
            }
        };
        Ok(Page {
            payments: fetched.value.items,
            rejected: fetched.value.rejected,
            groups: Vec::new(),
            next: self.full_size(&request, fetched.value.next),
            rate_limit: fetched.rate_limit,
        })
    }

    fn has_change_feed(&self) -> bool {
        true
    }

    /// PayPro's `/events`: a payment payload is the payment as it was; a refund says its
    /// payment must be read again; a chargeback says how much, and whether it is completed;
    /// refunds, chargebacks and payouts are carried as the ledger's book records too.
    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangePage, SourceError> {
        let Some(request) = self.request("events", cursor) else {
            return Ok(ChangePage::default());
        };
        let fetched = match within_cap(&request, self.client.events_page(Some(&request))).await? {
            Ok(fetched) => fetched,
            Err(smaller) => {
                return Ok(ChangePage {
                    next: Some(smaller),
                    ..ChangePage::default()
                });
            }
        };
        let changes = fetched
            .value
            .items
            .into_iter()
            .map(|event| {
                let (kind, record) = match event.payload {
                    EventPayload::Payment(payment) => (ChangeKind::Payment(payment), None),
                    EventPayload::Refund(refund) => (
                        ChangeKind::Touched {
                            source_id: refund.payment_id.clone(),
                        },
                        Some(refund.into_record()),
                    ),
                    EventPayload::Chargeback(chargeback) => (
                        charged_back(chargeback.clone()),
                        Some(chargeback.into_record()),
                    ),
                    EventPayload::Payout(payout) => (
                        ChangeKind::Other {
                            kind: event.event_type,
                        },
                        Some(payout.into_record()),
                    ),
                    EventPayload::Other { .. } => (
                        ChangeKind::Other {
                            kind: event.event_type,
                        },
                        None,
                    ),
                };
                Change {
                    id: event.id,
                    at: event.created_at,
                    kind,
                    record,
                }
            })
            .collect();
        Ok(ChangePage {
            changes,
            rejected: fetched.value.rejected,
            next: self.full_size(&request, fetched.value.next),
            rate_limit: fetched.rate_limit,
        })
    }

    /// PayPro's `/chargebacks`, newest first.
    async fn chargebacks(&self, cursor: Option<&Cursor>) -> Result<ChangePage, SourceError> {
        let Some(request) = self.request("chargebacks", cursor) else {
            return Ok(ChangePage::default());
        };
        let fetched =
            match within_cap(&request, self.client.chargebacks_page(Some(&request))).await? {
                Ok(fetched) => fetched,
                Err(smaller) => {
                    return Ok(ChangePage {
                        next: Some(smaller),
                        ..ChangePage::default()
                    });
                }
            };
        Ok(ChangePage {
            changes: fetched
                .value
                .items
                .into_iter()
                // The list as it is now, not events: its records are stamped by their
                // creation, so the walk of the book listing keeps them, not this.
                .map(|chargeback| Change {
                    id: chargeback.id.clone(),
                    at: chargeback.created_at,
                    kind: charged_back(chargeback),
                    record: None,
                })
                .collect(),
            rejected: fetched.value.rejected,
            next: self.full_size(&request, fetched.value.next),
            rate_limit: fetched.rate_limit,
        })
    }

    async fn payment(&self, source_id: &str) -> Result<OnePayment, SourceError> {
        let fetched = self.client.payment(source_id).await?;
        Ok(OnePayment {
            payment: fetched.value,
            rate_limit: fetched.rate_limit,
        })
    }

    /// Refunds, chargebacks and payouts: PayPro lists all three.
    fn book_kinds(&self) -> &'static [BookKind] {
        &BookKind::ALL
    }

    /// PayPro's `/refunds`, `/chargebacks` or `/payouts`, newest first, each record as a
    /// [`BookRecord`] with unified ids. A cursor of another listing than `kind`'s is refused
    /// with [`SourceError::BadCursor`], unread.
    async fn book_page(
        &self,
        kind: BookKind,
        cursor: Option<&Cursor>,
    ) -> Result<BookPage, SourceError> {
        let listing = match kind {
            BookKind::Refund => "refunds",
            BookKind::Chargeback => "chargebacks",
            BookKind::Payout => "payouts",
        };
        let Some(request) = self.request(listing, cursor) else {
            return Ok(BookPage::default());
        };
        if !is_of_listing(&request, listing) {
            return Err(SourceError::BadCursor(format!(
                "`{}` is not a page of PayPro's /{listing}",
                request.escape_default()
            )));
        }
        match kind {
            BookKind::Refund => {
                self.book_listing(
                    &request,
                    self.client.refunds_page(Some(&request)),
                    Refund::into_record,
                )
                .await
            }
            BookKind::Chargeback => {
                self.book_listing(
                    &request,
                    self.client.chargebacks_page(Some(&request)),
                    Chargeback::into_record,
                )
                .await
            }
            BookKind::Payout => {
                self.book_listing(
                    &request,
                    self.client.payouts_page(Some(&request)),
                    Payout::into_record,
                )
                .await
            }
        }
    }

    /// PayPro's `/balances`; `None` when PayPro answers 404 (no balance to ask). A balance that
    /// cannot be read is left out and logged as a warning, naming why (the others are given).
    async fn balances(&self) -> Result<Option<Balances>, SourceError> {
        let fetched = match self.client.balances().await {
            Ok(fetched) => fetched,
            Err(SourceError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        for rejected in &fetched.value.rejected {
            tracing::warn!(reason = %rejected.reason, record = %rejected.raw, "a PayPro balance could not be read; it is left out");
        }
        Ok(Some(Balances {
            balances: fetched.value.items,
            rate_limit: fetched.rate_limit,
        }))
    }
}

impl PayProSource {
    /// The page at `request` of a listing fetched by `fetch`, each item made a [`BookRecord`]
    /// by `into`; a page over the body cap is asked for again smaller (see [`within_cap`]).
    async fn book_listing<T>(
        &self,
        request: &str,
        fetch: impl std::future::Future<Output = Result<Fetched<ListPage<T>>, SourceError>>,
        into: fn(T) -> BookRecord,
    ) -> Result<BookPage, SourceError> {
        let fetched = match within_cap(request, fetch).await? {
            Ok(fetched) => fetched,
            Err(smaller) => {
                return Ok(BookPage {
                    next: Some(smaller),
                    ..BookPage::default()
                });
            }
        };
        Ok(BookPage {
            records: fetched.value.items.into_iter().map(into).collect(),
            rejected: fetched.value.rejected,
            next: self.full_size(request, fetched.value.next),
            rate_limit: fetched.rate_limit,
        })
    }

    /// The address to fetch for `listing` at `cursor`: its first page for `None`; `None` for a
    /// cursor with nothing left of the listing.
    fn request(&self, listing: &str, cursor: Option<&Cursor>) -> Option<String> {
        match cursor {
            None => Some(self.client.first_page_of(listing)),
            Some(cursor) => cursor.listing.clone(),
        }
    }

    /// Where a listing continues after the page at `request`: full-size pages again after a
    /// page this source asked for smaller.
    fn full_size(&self, request: &str, next: Option<String>) -> Option<Cursor> {
        let full = u32::from(self.client.limit());
        next.map(|listing| Cursor {
            listing: Some(if limit_of(request) < full {
                with_limit(&listing, full)
            } else {
                listing
            }),
            ..Cursor::default()
        })
    }
}

/// Awaits the page at `request`. A page over the body cap is asked for again with half the
/// `limit` (the `Err` is the smaller request's cursor), down to a single item, which is named
/// in the error.
async fn within_cap<T>(
    request: &str,
    fetch: impl std::future::Future<Output = Result<T, SourceError>>,
) -> Result<Result<T, Cursor>, SourceError> {
    match fetch.await {
        Ok(fetched) => Ok(Ok(fetched)),
        Err(SourceError::BodyTooLarge {
            provider,
            cap,
            what,
        }) => {
            let limit = limit_of(request);
            if limit <= 1 {
                return Err(SourceError::BodyTooLarge {
                    provider,
                    cap,
                    what: format!("{what} (a single item, the smallest page there is)"),
                });
            }
            let smaller = with_limit(request, limit / 2);
            tracing::warn!(page = %request, retry = %smaller, cap, "a page is over the body cap; asking for a smaller one");
            Ok(Err(Cursor {
                listing: Some(smaller),
                ..Cursor::default()
            }))
        }
        Err(error) => Err(error),
    }
}

/// A chargeback as a change of its payment.
fn charged_back(chargeback: Chargeback) -> ChangeKind {
    ChangeKind::ChargedBack {
        completed: chargeback.is_completed(),
        payment_id: chargeback.unified_payment_id(),
        record: serde_json::to_string(&chargeback).unwrap_or_default(),
        chargeback_id: chargeback.id,
        source_id: chargeback.payment_id,
        amount: chargeback.amount,
    }
}

/// Whether `address` is a page of `/{listing}` (its path, with or without a query).
fn is_of_listing(address: &str, listing: &str) -> bool {
    let path = address.split_once('?').map_or(address, |(path, _)| path);
    path == format!("/{listing}")
}

/// PayPro's page size when a request does not say.
const PAYPRO_DEFAULT_LIMIT: u32 = 10;

/// The `limit` an address asks for (PayPro's default 10 when it does not say).
fn limit_of(address: &str) -> u32 {
    address
        .split_once('?')
        .into_iter()
        .flat_map(|(_, query)| query.split('&'))
        .find_map(|pair| pair.strip_prefix("limit="))
        .and_then(|limit| limit.parse().ok())
        .unwrap_or(PAYPRO_DEFAULT_LIMIT)
}

/// `address` with its `limit` set to `limit`, the rest of its query (the opaque cursor) kept
/// byte for byte.
fn with_limit(address: &str, limit: u32) -> String {
    let (path, query) = address.split_once('?').unwrap_or((address, ""));
    let mut pairs: Vec<String> = Vec::new();
    let mut set = false;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        if pair.starts_with("limit=") || pair == "limit" {
            if !set {
                pairs.push(format!("limit={limit}"));
                set = true;
            }
        } else {
            pairs.push(pair.to_owned());
        }
    }
    if !set {
        pairs.insert(0, format!("limit={limit}"));
    }
    format!("{path}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_read_and_set_keeping_the_cursor() {
        assert_eq!(limit_of("/payments?limit=100&cursor=YWZ0ZXI6UFAx"), 100);
        assert_eq!(limit_of("/payments?cursor=x"), 10);
        assert_eq!(
            with_limit("/payments?limit=100&cursor=YWZ0ZXI6UFAx", 50),
            "/payments?limit=50&cursor=YWZ0ZXI6UFAx"
        );
        assert_eq!(
            with_limit("/payments?cursor=a%3D&limit=3", 1),
            "/payments?cursor=a%3D&limit=1"
        );
        assert_eq!(
            with_limit("/payments?cursor=x", 5),
            "/payments?limit=5&cursor=x"
        );
        assert_eq!(with_limit("/payments", 5), "/payments?limit=5");
    }

    #[test]
    fn a_book_cursor_belongs_to_its_listing() {
        assert!(is_of_listing("/payouts?limit=100&cursor=x", "payouts"));
        assert!(is_of_listing("/payouts", "payouts"));
        assert!(!is_of_listing("/refunds?limit=100&cursor=x", "payouts"));
        assert!(!is_of_listing("/payouts/PO1?limit=1", "payouts"));
        assert!(!is_of_listing("/payoutsx?limit=1", "payouts"));
    }
}
