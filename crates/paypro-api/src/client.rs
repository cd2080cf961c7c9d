//! The HTTP client for PayPro's payment list, and [`PayProSource`] over it.

use async_trait::async_trait;
use payments_http::{ApiClient, ApiKey, ClientConfig, ConfigError, Fetched, Provider};
use payments_model::{Cursor, ListingOrder, Page, Payment, PaymentSource, Rejected, SourceError};
use serde::Deserialize;

use crate::decode_page;

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
/// following `_links.next`.
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

    /// `GET /payments`: the page at `page` (relative to the base URL; `None`: the first page,
    /// with this client's `limit`), mapped, with where the listing continues. A record that
    /// cannot be mapped is set aside whole with its reason.
    pub async fn payments_page(
        &self,
        page: Option<&str>,
    ) -> Result<Fetched<PaymentsPage>, SourceError> {
        let first = format!("/payments?limit={}", self.limit);
        let fetched = self.api.get(page.unwrap_or(&first)).await?;
        let (links, mapped) =
            decode_page(&fetched.value).map_err(|e| self.api.decode_error(&e, &fetched.value))?;
        let next = links
            .next
            .as_deref()
            .map(|next| self.api.relative_next(next))
            .transpose()?;
        Ok(Fetched {
            value: PaymentsPage {
                payments: mapped.payments,
                rejected: mapped.rejected,
                next,
            },
            rate_limit: fetched.rate_limit,
        })
    }
}

/// A page of payments, as [`PayProClient::payments_page`] maps it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentsPage {
    /// The payments that mapped.
    pub payments: Vec<Payment>,
    /// The records that did not, kept whole with the reason.
    pub rejected: Vec<Rejected>,
    /// Where the listing continues (relative to the base URL, with PayPro's opaque cursor);
    /// `None` on the last page. A `_links.next` on another origin is refused.
    pub next: Option<String>,
}

/// PayPro's payments as a [`PaymentSource`], newest first. The cursor is the next page's
/// address below the base URL (carrying PayPro's opaque `cursor`).
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
        let at = match cursor {
            None => None,
            Some(Cursor {
                listing: Some(listing),
                ..
            }) => Some(listing.as_str()),
            Some(_) => return Ok(Page::default()),
        };
        let fetched = self.client.payments_page(at).await?;
        let next = fetched.value.next.map(|listing| Cursor {
            listing: Some(listing),
            ..Cursor::default()
        });
        Ok(Page {
            payments: fetched.value.payments,
            rejected: fetched.value.rejected,
            groups: Vec::new(),
            next,
            rate_limit: fetched.rate_limit,
        })
    }
}
