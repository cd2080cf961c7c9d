//! The HTTP client for MKP's payment-link endpoints, and [`MkpSource`], which walks a whole
//! account (every link, every link's payments) one page per call.

use std::collections::HashSet;

use async_trait::async_trait;
use payments_http::{ApiClient, ApiKey, ClientConfig, ConfigError, Fetched, ListPage, Provider};
use std::time::Duration;

use payments_model::{
    Cursor, Group, ListingOrder, OneGroup, Page, PageText, Payment, PaymentSource, RateLimit,
    RateLimitHeaders, Rejected, SourceError,
};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::wire::PaymentLink;
use crate::{decode_links_page, decode_payments_page};

/// MKP's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.mijnklantportaal.nl/v1";

/// MKP's documented rate limit: 60 requests per rolling minute, per key.
pub const RATE_LIMIT: RateLimit = RateLimit::per(60, Duration::from_secs(60));

/// The `User-Agent` of every request: this library and its version.
pub const USER_AGENT: &str = concat!(
    env!("CARGO_PKG_NAME"),
    "/",
    env!("CARGO_PKG_VERSION"),
    " (payments-ledger)"
);

static MKP: Provider = Provider {
    name: "MijnKlantportaal",
    key_variable: "MKP_API_KEY",
    forbidden_advice: "the key lacks the scope `paymentlinks.read`, which reading payment links and their payments needs; create a key with that scope in MijnKlantportaal",
    error_message,
};

/// MKP's error body: `{"code": 404, "message": "…"}` (the shape is not confirmed; anything else
/// is shown as text).
fn error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ApiError {
        message: Option<String>,
    }
    serde_json::from_slice::<ApiError>(body).ok()?.message
}

/// A client for MKP's payment links: list them page by page, get one, list a link's payments
/// page by page. Pages are named by the path and query below the base URL (`None` is the first
/// page); each page says where its listing continues, after checking that the provider's
/// `next_page_url` stays on the configured origin.
#[derive(Debug)]
pub struct MkpClient {
    api: ApiClient,
}

impl MkpClient {
    /// A client of the production API with the default limits.
    pub fn new(api_key: impl Into<ApiKey>) -> Result<MkpClient, ConfigError> {
        MkpClient::with_config(MkpClient::config(DEFAULT_BASE_URL, api_key))
    }

    /// The default configuration for `base_url`, to adjust (timeouts, body cap) before
    /// [`MkpClient::with_config`].
    pub fn config(base_url: &str, api_key: impl Into<ApiKey>) -> ClientConfig {
        ClientConfig::new(base_url, api_key, USER_AGENT)
    }

    /// A client with a custom configuration (base URL, timeouts, body cap).
    pub fn with_config(config: ClientConfig) -> Result<MkpClient, ConfigError> {
        Ok(MkpClient {
            api: ApiClient::new(&MKP, config)?,
        })
    }

    /// The base URL in use.
    pub fn base_url(&self) -> &str {
        self.api.base_url().as_str()
    }

    /// `GET /payment-links`: one page of payment links (`None`: the first page), read into
    /// groups, with where the listing continues. A link that cannot be read, or whose id could
    /// not be sent in a URL path, is set aside whole.
    pub async fn payment_links_page(
        &self,
        page: Option<&str>,
    ) -> Result<Fetched<LinksPage>, SourceError> {
        let request = page.unwrap_or("/payment-links");
        let fetched = self.api.get(request).await?;
        let decoded = decode_links_page(&fetched.value)
            .map_err(|e| self.api.decode_error(&e, &fetched.value))?;
        Ok(Fetched {
            value: LinksPage {
                items: decoded.groups,
                rejected: decoded.rejected,
                next: self.relative_next(request, decoded.next_page_url.as_deref())?,
            },
            rate_limit: fetched.rate_limit,
        })
    }

    /// `GET /payment-links/{id}`: one link.
    pub async fn payment_link(&self, link_id: &str) -> Result<Fetched<PaymentLink>, SourceError> {
        /// The link on its own, or wrapped as `{"data": …}`; the docs do not say which.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneLink {
            Bare(PaymentLink),
            Wrapped { data: PaymentLink },
        }
        let fetched = self
            .api
            .get_json::<OneLink>(&format!("/payment-links/{}", path_segment(link_id)?))
            .await?;
        let value = match fetched.value {
            OneLink::Bare(link) | OneLink::Wrapped { data: link } => link,
        };
        Ok(Fetched {
            value,
            rate_limit: fetched.rate_limit,
        })
    }

    /// `GET /payment-links/{id}`: one link read into a group as the link listing reads it
    /// (`None`: MKP does not know it, 404), or the link set aside whole with the reason when it
    /// cannot be read or its id could not be sent in a URL path. A link id that could not be sent
    /// in a URL path is refused without a request; a readable answer about another link is
    /// refused.
    pub async fn link_group(
        &self,
        link_id: &str,
    ) -> Result<Fetched<Option<Result<Group, Rejected>>>, SourceError> {
        payments_http::path_segment(link_id).map_err(|problem| {
            SourceError::Refused(format!("{} payment link id {problem}", MKP.name))
        })?;
        let fetched = match self.api.get(&format!("/payment-links/{link_id}")).await {
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
            decode_link(&fetched.value).map_err(|e| self.api.decode_error(&e, &fetched.value))?;
        // A link set aside is returned as it is: its id may be the very thing wrong with it.
        if let Ok(group) = &value
            && group.id != link_id
        {
            let answered = &group.id;
            return Err(SourceError::BadResponse {
                provider: MKP.name,
                status: 200,
                problem: format!(
                    "asked for payment link `{link_id}`, the answer is payment link `{}`",
                    answered.escape_default()
                ),
                excerpt: String::new(),
            });
        }
        Ok(Fetched {
            value: Some(value),
            rate_limit: fetched.rate_limit,
        })
    }

    /// `GET /payment-links/{id}/payments`: one page of the payments made through `link`
    /// (`None`: the first page), mapped with the link's description, with where the listing
    /// continues. A record that cannot be mapped is set aside whole with its reason.
    pub async fn link_payments_page(
        &self,
        link: &Group,
        page: Option<&str>,
    ) -> Result<Fetched<PaymentsPage>, SourceError> {
        let first = format!("/payment-links/{}/payments", path_segment(&link.id)?);
        let request = page.unwrap_or(&first);
        let fetched = self.api.get(request).await?;
        let (next_page_url, mapped) = decode_payments_page(&fetched.value, Some(link))
            .map_err(|e| self.api.decode_error(&e, &fetched.value))?;
        Ok(Fetched {
            value: PaymentsPage {
                items: mapped.payments,
                rejected: mapped.rejected,
                next: self.relative_next(request, next_page_url.as_deref())?,
            },
            rate_limit: fetched.rate_limit,
        })
    }

    /// Where a listing continues, relative to the base URL: the `next_page_url` of the answer
    /// to `request`, resolved against it when relative; refused when it leaves the configured
    /// origin or that listing.
    fn relative_next(
        &self,
        request: &str,
        next: Option<&str>,
    ) -> Result<Option<String>, SourceError> {
        next.map(|next| self.api.relative_next(request, next))
            .transpose()
    }
}

/// The body of `GET /payment-links/{id}`, the link on its own or wrapped as `{"data": …}` (the
/// docs do not say which), read as [`decode_links_page`] reads a listed link: the group, or the
/// link set aside whole with the reason.
fn decode_link(body: &[u8]) -> Result<Result<Group, Rejected>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(default)]
        id: Option<serde::de::IgnoredAny>,
        #[serde(default, borrow)]
        data: Option<&'a RawValue>,
    }
    let text = PageText::new(body);
    let raw: &RawValue = text.parse()?;
    let link = match serde_json::from_str::<Head<'_>>(raw.get()) {
        Ok(Head {
            id: None,
            data: Some(data),
        }) if data.get().trim_start().starts_with('{') => data,
        _ => raw,
    };
    let (mut groups, mut rejected) =
        text.decode_records(std::slice::from_ref(&link), PaymentLink::try_to_group);
    match (groups.pop(), rejected.pop()) {
        (Some(group), _) => Ok(Ok(group)),
        (None, Some(mut rejected)) => {
            rejected.reason = format!("payment link {}", rejected.reason);
            Ok(Err(rejected))
        }
        (None, None) => Err(serde::de::Error::custom(
            "the payment link was neither read nor set aside",
        )),
    }
}

/// A page of payment links, as [`MkpClient::payment_links_page`] reads it into groups.
pub type LinksPage = ListPage<Group>;

/// A page of one link's payments, as [`MkpClient::link_payments_page`] maps it.
pub type PaymentsPage = ListPage<Payment>;

/// A link id as a path segment; MKP ids are `plk_` and letters or digits, so anything that
/// would need escaping is refused rather than sent.
fn path_segment(id: &str) -> Result<&str, SourceError> {
    payments_http::path_segment(id)
        .map_err(|problem| SourceError::BadCursor(format!("payment link id {problem}")))
}

/// A whole MKP account as a [`PaymentSource`]: the link list, page by page, and after each
/// page of links the payments of each of its links, page by page.
///
/// The cursor holds where the link list continues, the links of pages already read whose
/// payments are still to be read (with their descriptions), and where the first of them
/// continues, so a run can resume anywhere in the walk. A caller may drop links from
/// `Cursor::groups` to skip reading their payments.
#[derive(Debug)]
pub struct MkpSource {
    client: MkpClient,
    only_links: Option<HashSet<String>>,
    rate_limit: Option<RateLimit>,
}

impl MkpSource {
    /// Every link of the account, paced by MKP's documented [`RATE_LIMIT`].
    pub fn new(client: MkpClient) -> MkpSource {
        MkpSource {
            client,
            only_links: None,
            rate_limit: Some(RATE_LIMIT),
        }
    }

    /// Declares another rate limit than MKP's documented one (a key with a different contract,
    /// or a test server); `None` sends requests unpaced.
    pub fn with_rate_limit(mut self, rate_limit: Option<RateLimit>) -> MkpSource {
        self.rate_limit = rate_limit;
        self
    }

    /// Only these links' payments. The link list is still read (it carries each link's
    /// description and status), but other links' payments are not.
    pub fn only_links<I, S>(mut self, link_ids: I) -> MkpSource
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.only_links = Some(link_ids.into_iter().map(Into::into).collect());
        self
    }

    /// The client underneath.
    pub fn client(&self) -> &MkpClient {
        &self.client
    }

    async fn links_page(&self, at: Option<&str>) -> Result<Page, SourceError> {
        let fetched = self.client.payment_links_page(at).await?;
        let LinksPage {
            items: groups,
            rejected,
            next: listing,
        } = fetched.value;
        let queued: Vec<Group> = groups
            .iter()
            .filter(|g| {
                self.only_links
                    .as_ref()
                    .is_none_or(|only| only.contains(&g.id))
            })
            .cloned()
            .collect();
        let next = Cursor {
            listing,
            groups: queued,
            group_page: None,
        };
        Ok(Page {
            payments: Vec::new(),
            rejected,
            groups,
            next: (!next.is_exhausted()).then_some(next),
            rate_limit: fetched.rate_limit,
        })
    }

    async fn group_page(&self, cursor: &Cursor, group: &Group) -> Result<Page, SourceError> {
        let after_group = Cursor {
            listing: cursor.listing.clone(),
            groups: cursor.groups[1..].to_vec(),
            group_page: None,
        };
        let skip = |rejected: Vec<Rejected>| Page {
            rejected,
            next: (!after_group.is_exhausted()).then_some(after_group.clone()),
            ..Page::default()
        };
        // A link queued before its id was checked (a checkpoint of an older version): set it
        // aside, or every later run would fail at the same link.
        if let Err(problem) = payments_http::path_segment(&group.id) {
            tracing::warn!(link = %group.id, "a queued payment link has an id that cannot be sent in a URL; set aside");
            return Ok(skip(vec![set_aside(
                group,
                &format!("field `id`: {problem}; its payments are not requested"),
            )]));
        }
        let fetched = match self
            .client
            .link_payments_page(group, cursor.group_page.as_deref())
            .await
        {
            Ok(fetched) => fetched,
            // The link was deleted after it was listed: it has no payments left to read, and
            // failing here would make every later run fail at the same link.
            Err(SourceError::NotFound { .. }) => {
                tracing::warn!(link = %group.id, "a listed payment link is gone (404); skipped");
                return Ok(skip(Vec::new()));
            }
            // MKP has no page size to ask for less: set the link aside, named, and go on.
            Err(SourceError::BodyTooLarge { cap, what, .. }) => {
                tracing::warn!(link = %group.id, cap, page = %what, "a page of a link's payments is over the body cap; link set aside");
                return Ok(skip(vec![set_aside(
                    group,
                    &format!(
                        "its payments page `{what}` is over the body cap of {cap} bytes, so its payments from that page on were not read; raise the body cap to read them"
                    ),
                )]));
            }
            Err(error) => return Err(error),
        };
        let next = match fetched.value.next {
            Some(group_page) => Cursor {
                group_page: Some(group_page),
                ..cursor.clone()
            },
            None => after_group,
        };
        Ok(Page {
            payments: fetched.value.items,
            rejected: fetched.value.rejected,
            groups: Vec::new(),
            next: (!next.is_exhausted()).then_some(next),
            rate_limit: fetched.rate_limit,
        })
    }
}

/// A queued link whose payments cannot be read, set aside with why: the link as it was listed
/// (its id, status, description, creation time) is its raw record.
fn set_aside(group: &Group, why: &str) -> Rejected {
    Rejected {
        source_id: Some(group.id.clone()),
        reason: format!("payment link `{}`: {why}", group.id),
        raw: serde_json::to_string(group).unwrap_or_else(|_| group.id.clone()),
    }
}

#[async_trait]
impl PaymentSource for MkpSource {
    fn name(&self) -> &str {
        "mkp"
    }

    fn order(&self) -> ListingOrder {
        ListingOrder::Groups
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    async fn group(&self, group_id: &str) -> Result<OneGroup, SourceError> {
        let fetched = self.client.link_group(group_id).await?;
        Ok(OneGroup {
            group: fetched.value,
            rate_limit: fetched.rate_limit,
        })
    }

    async fn page(&self, cursor: Option<&Cursor>) -> Result<Page, SourceError> {
        match cursor {
            None => self.links_page(None).await,
            Some(cursor) => match (cursor.groups.first(), cursor.listing.as_deref()) {
                (Some(group), _) => self.group_page(cursor, group).await,
                (None, Some(listing)) => self.links_page(Some(listing)).await,
                (None, None) => Ok(Page::default()),
            },
        }
    }
}
