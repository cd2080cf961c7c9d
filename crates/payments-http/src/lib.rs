//! The HTTP plumbing both provider clients share, so that it exists once:
//!
//! - [`ApiKey`]: the key, redacted in `Debug` and never in a message;
//! - [`ApiClient`]: a GET-only JSON client over one base URL that refuses plain `http://` off
//!   loopback, follows no redirect, caps response bodies, reports rate-limit headers, and turns
//!   every failure into a [`SourceError`] the sync engine can act on;
//! - [`ApiClient::relative_next`]: the guard that keeps next-page links on the configured origin
//!   and on the listing they continue, resolving relative ones against the request;
//! - [`path_segment`]: the guard that lets a provider's id into a URL path only as it is;
//! - [`ListPage`]: one page of any listing, as a client hands it on;
//! - [`WebhookSecret`], [`WebhookError`] and [`digest_key`]: what both providers' webhook
//!   checks share (HMAC-SHA256 over raw bytes, compared in constant time).
//!
//! Provider knowledge (paths, envelopes, error bodies, advice) stays in the provider crates and
//! reaches this crate through a [`Provider`] description.
//!
//! # Examples
//!
//! ```
//! use payments_http::{ApiClient, ClientConfig, Provider};
//!
//! static EXAMPLE: Provider = Provider {
//!     name: "Example",
//!     key_variable: "EXAMPLE_API_KEY",
//!     forbidden_advice: "the key lacks a scope",
//!     error_message: |_| None,
//! };
//! let config = ClientConfig::new("https://api.example.com/v1", "secret-key", "example/1.0");
//! let client = ApiClient::new(&EXAMPLE, config)?;
//! assert_eq!(client.resolve("/payments?page=2").as_str(), "https://api.example.com/v1/payments?page=2");
//! assert_eq!(client.relative_next("/payments", "https://api.example.com/v1/payments?page=3").unwrap(), "/payments?page=3");
//! assert_eq!(client.relative_next("/payments?page=2", "?page=3").unwrap(), "/payments?page=3");
//! assert!(client.relative_next("/payments", "https://evil.example.com/v1/payments?page=3").is_err());
//! assert!(client.relative_next("/payments", "/v1/customers?page=2").is_err());
//!
//! let root = ApiClient::new(&EXAMPLE, ClientConfig::new("https://api.example.com/", "k", "example/1.0"))?;
//! assert_eq!(root.resolve("/payments?limit=100").as_str(), "https://api.example.com/payments?limit=100");
//! assert_eq!(root.relative_next("/payments?limit=100", "https://api.example.com/payments?cursor=x").unwrap(), "/payments?cursor=x");
//! assert!(!format!("{client:?}").contains("secret-key"));
//!
//! let plain = ClientConfig::new("http://api.example.com", "secret-key", "example/1.0");
//! assert!(ApiClient::new(&EXAMPLE, plain).is_err());
//! # Ok::<(), payments_http::ConfigError>(())
//! ```
#![forbid(unsafe_code)]

mod webhook;

pub use webhook::{EmptySecret, WebhookError, WebhookSecret, digest_key};

use std::fmt;
use std::time::{Duration, SystemTime};

use payments_model::{RateLimitHeaders, SourceError, TransportKind};
use reqwest::header::{self, HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use url::{Host, Url};

/// What a client needs to know about its provider to explain failures.
#[derive(Debug)]
pub struct Provider {
    /// The provider's name in messages: `"MijnKlantportaal"`.
    pub name: &'static str,
    /// The variable that holds the key, named in advice: `"MKP_API_KEY"`.
    pub key_variable: &'static str,
    /// What a 403 means for this provider and what to do about it.
    pub forbidden_advice: &'static str,
    /// Reads the provider's error message out of an error body, when it has one.
    pub error_message: fn(&[u8]) -> Option<String>,
}

/// An API key. Its `Debug` is redacted and it has no `Display`, so it cannot end up in a
/// message or a log by accident.
#[derive(Clone)]
pub struct ApiKey(SecretString);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(SecretString::from(key.into()))
    }

    /// The key itself, for the `Authorization` header and for scrubbing it out of text.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl<S: Into<String>> From<S> for ApiKey {
    fn from(key: S) -> ApiKey {
        ApiKey::new(key)
    }
}

/// How to reach a provider.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The API's base URL, such as `https://api.mijnklantportaal.nl/v1`.
    pub base_url: String,
    /// The API key.
    pub api_key: ApiKey,
    /// The `User-Agent` sent with every request.
    pub user_agent: String,
    /// The longest a whole request may take.
    pub timeout: Duration,
    /// The longest connecting may take.
    pub connect_timeout: Duration,
    /// The largest response body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl ClientConfig {
    /// A configuration with the default limits: 30 s per request, 10 s to connect, 8 MiB bodies.
    pub fn new(base_url: &str, api_key: impl Into<ApiKey>, user_agent: &str) -> ClientConfig {
        ClientConfig {
            base_url: base_url.to_owned(),
            api_key: api_key.into(),
            user_agent: user_agent.to_owned(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Why a client could not be set up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The base URL does not parse or cannot be a base.
    #[error("base URL `{url}` is not usable: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The base URL is plain `http://` on a host that is not loopback.
    #[error(
        "base URL `{url}` uses plain http, which would send the API key unencrypted; use https:// (plain http is allowed only on loopback, for the sandbox)"
    )]
    PlainHttp {
        /// The URL given.
        url: String,
    },
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

/// One page of a provider's listing, as a client hands it on: the records that mapped, the ones
/// that did not (kept whole with the reason), and where the listing continues.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListPage<T> {
    /// The records that mapped, in the provider's order.
    pub items: Vec<T>,
    /// The records that did not, kept whole with the reason.
    pub rejected: Vec<payments_model::Rejected>,
    /// Where the listing continues, relative to the base URL and already checked by
    /// [`ApiClient::relative_next`]; `None` on the last page.
    pub next: Option<String>,
}

impl<T> Default for ListPage<T> {
    fn default() -> ListPage<T> {
        ListPage {
            items: Vec::new(),
            rejected: Vec::new(),
            next: None,
        }
    }
}

/// Whether a provider's id can be sent as one segment of a URL path as it is: letters, digits,
/// `_` and `-` only (both providers' ids are), so anything that would need escaping (`/`, `..`,
/// `?`, `%`, a space) is refused rather than sent. The error says why, with the id escaped.
///
/// ```
/// assert!(payments_http::path_segment("PP0000000001").is_ok());
/// let refused = payments_http::path_segment("PP1/../customers").unwrap_err();
/// assert!(refused.contains("holds `/`"), "{refused}");
/// ```
pub fn path_segment(id: &str) -> Result<&str, String> {
    if id.is_empty() {
        return Err("is empty, so it cannot be sent in a URL path".to_owned());
    }
    match id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        None => Ok(id),
        Some(c) => Err(format!(
            "`{}` holds `{}`, which is not a letter, digit, `_` or `-`, so it is not sent in a URL path",
            id.escape_default(),
            c.escape_default()
        )),
    }
}

/// A decoded response with what it said about the rate limit.
#[derive(Debug)]
pub struct Fetched<T> {
    /// The decoded body.
    pub value: T,
    /// The rate-limit headers.
    pub rate_limit: RateLimitHeaders,
}

/// A GET-only JSON client over one base URL. See the crate docs.
pub struct ApiClient {
    http: reqwest::Client,
    base: Url,
    /// The base URL's path without a trailing slash: `/v1`, or empty at the root.
    base_path: String,
    key: ApiKey,
    provider: &'static Provider,
    max_body: usize,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("provider", &self.provider.name)
            .field("base", &self.base.as_str())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Whether `url` points at this machine (127.0.0.0/8, ::1 or `localhost`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The one rule for a provider's base URL: it parses, is `https://` (plain `http://` only on
/// loopback, for the sandbox, so that no key travels unencrypted), has a host, and has no query
/// or fragment. [`ApiClient::new`] keeps it, and so does a source registry before any client
/// is built.
pub fn check_base_url(base_url: &str) -> Result<Url, ConfigError> {
    let bad = |reason: &str| ConfigError::BadUrl {
        url: base_url.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(base_url).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(ConfigError::PlainHttp {
                url: base_url.to_owned(),
            });
        }
        other => return Err(bad(&format!("the scheme must be https, not `{other}`"))),
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(bad("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or fragment"));
    }
    Ok(url)
}

impl ApiClient {
    /// A client for `provider` at `config.base_url`, refusing plain http off loopback.
    pub fn new(
        provider: &'static Provider,
        config: ClientConfig,
    ) -> Result<ApiClient, ConfigError> {
        let mut base = check_base_url(&config.base_url)?;
        let base_path = base.path().trim_end_matches('/').to_owned();
        base.set_path(&base_path);
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(ApiClient {
            http,
            base,
            base_path,
            key: config.api_key,
            provider,
            max_body: config.max_body_bytes,
        })
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The provider this client talks to.
    pub fn provider(&self) -> &'static Provider {
        self.provider
    }

    /// The absolute URL of `relative` (a path below the base, with its query: `/payments?page=2`).
    pub fn resolve(&self, relative: &str) -> Url {
        let mut url = self.base.clone();
        let (path, query) = match relative.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (relative, None),
        };
        url.set_path(&format!(
            "{}/{}",
            self.base_path,
            path.trim_start_matches('/')
        ));
        url.set_query(query);
        url
    }

    /// Checks a next-page link from the provider and returns it relative to the base URL.
    ///
    /// `request` is the address (relative to the base URL, as given to [`ApiClient::get`]) of
    /// the request whose answer held the link; a relative link (`/v1/payments?page=2`,
    /// `?page=2`) is resolved against it. Refused ([`SourceError::Refused`], naming the link):
    /// a link to another origin (scheme, host or port) than the configured base URL, so the key
    /// is sent only to the configured API, and a link to another listing than the request's
    /// (another path: `/v1/customers?page=2` from `/v1/payment-links`), so one listing's records
    /// are never read as another's.
    pub fn relative_next(&self, request: &str, next: &str) -> Result<String, SourceError> {
        let requested = self.resolve(request);
        let url = requested
            .join(next.trim())
            .map_err(|e| SourceError::BadResponse {
                provider: self.provider.name,
                status: 200,
                problem: format!(
                    "the next-page link `{}` is not a URL ({e})",
                    self.scrub(next)
                ),
                excerpt: String::new(),
            })?;
        if url.origin() != self.base.origin() {
            return Err(SourceError::Refused(format!(
                "{} sent a next-page link to {}, which is not the configured base URL {}; not following it, so the API key stays with the configured host",
                self.provider.name,
                url.origin().ascii_serialization(),
                self.base.origin().ascii_serialization(),
            )));
        }
        let listing = |path: &str| path.trim_end_matches('/').to_owned();
        if listing(url.path()) != listing(requested.path()) {
            return Err(SourceError::Refused(format!(
                "{} sent a next-page link to another listing: `{}` from `{}`; not following it, so that its records are not read as this listing's",
                self.provider.name,
                self.scrub(&path_and_query(&url)),
                requested.path(),
            )));
        }
        let path = url
            .path()
            .strip_prefix(self.base_path.as_str())
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .ok_or_else(|| {
                SourceError::Refused(format!(
                    "{} sent a next-page link outside the base path {}: {}",
                    self.provider.name,
                    self.base.path(),
                    url.path()
                ))
            })?;
        Ok(match url.query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        })
    }

    /// GETs `relative` and decodes the JSON body as `T`.
    ///
    /// Every failure is a [`SourceError`]: 401/403 ([`SourceError::Auth`] with advice), 404,
    /// 400/422 (with the provider's message), 429 (with `Retry-After` in seconds or as an HTTP
    /// date, or `X-RateLimit-Reset`), 5xx, redirects (refused), timeouts, connection failures,
    /// bodies cut short, bodies over the cap, and bodies that are not the expected JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        relative: &str,
    ) -> Result<Fetched<T>, SourceError> {
        let fetched = self.get(relative).await?;
        let value = serde_json::from_slice(&fetched.value)
            .map_err(|e| self.decode_error(&e, &fetched.value))?;
        Ok(Fetched {
            value,
            rate_limit: fetched.rate_limit,
        })
    }

    /// GETs `relative` and returns the body of a 2xx answer as bytes, for callers that decode
    /// it themselves; every other answer is classified as in [`ApiClient::get_json`].
    pub async fn get(&self, relative: &str) -> Result<Fetched<Vec<u8>>, SourceError> {
        let url = self.resolve(relative);
        tracing::debug!(provider = self.provider.name, url = %url, "GET");
        let response = self
            .http
            .get(url.clone())
            .bearer_auth(self.key.expose())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.transport(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let rate_limit = rate_limit(&headers);
        let body = self.read_body(response, relative).await?;
        if (200..300).contains(&status) {
            return Ok(Fetched {
                value: body,
                rate_limit,
            });
        }
        Err(self.classify(status, &headers, rate_limit, relative, &body))
    }

    async fn read_body(
        &self,
        mut response: reqwest::Response,
        relative: &str,
    ) -> Result<Vec<u8>, SourceError> {
        let too_large = || SourceError::BodyTooLarge {
            provider: self.provider.name,
            cap: self.max_body,
            what: self.scrub(relative),
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_body as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(response.content_length().unwrap_or(0) as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&e))? {
            if body.len() + chunk.len() > self.max_body {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn classify(
        &self,
        status: u16,
        headers: &HeaderMap,
        rate_limit: RateLimitHeaders,
        relative: &str,
        body: &[u8],
    ) -> SourceError {
        let provider = self.provider.name;
        let message = || {
            (self.provider.error_message)(body)
                .map(|m| self.scrub(&m))
                .unwrap_or_else(|| self.excerpt(body))
        };
        // The provider's words, in parentheses after ours, when it said anything.
        let said = || match message() {
            m if m.trim().is_empty() => String::new(),
            m => format!(" ({m})"),
        };
        match status {
            401 => SourceError::Auth {
                provider,
                status,
                advice: format!(
                    "the key is missing, wrong or revoked; check {}{}",
                    self.provider.key_variable,
                    said()
                ),
            },
            403 => SourceError::Auth {
                provider,
                status,
                advice: format!(
                    "{}; fix the key in {}{}",
                    self.provider.forbidden_advice,
                    self.provider.key_variable,
                    said()
                ),
            },
            404 => SourceError::NotFound {
                provider,
                what: format!(
                    "{}{}",
                    relative.split('?').next().unwrap_or(relative),
                    said()
                ),
            },
            400 | 422 => SourceError::Invalid {
                provider,
                status,
                message: message(),
            },
            429 => SourceError::RateLimited {
                provider,
                retry_after: retry_after(headers, SystemTime::now()),
                rate_limit,
            },
            500..=599 => SourceError::Server {
                provider,
                status,
                retry_after: retry_after(headers, SystemTime::now()),
                excerpt: self.excerpt(body),
            },
            300..=399 => SourceError::Refused(format!(
                "{provider} answered with a redirect (HTTP {status}) to `{}`; redirects are not followed so that the API key never goes elsewhere; set the base URL to the final address",
                headers
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .map(|l| self.scrub(l))
                    .unwrap_or_default()
            )),
            _ => SourceError::BadResponse {
                provider,
                status,
                problem: "an unexpected HTTP status".to_owned(),
                excerpt: self.excerpt(body),
            },
        }
    }

    /// Classifies a 2xx body that did not decode: cut short (retryable) or not the documented
    /// JSON (with an excerpt, the key scrubbed).
    pub fn decode_error(&self, err: &serde_json::Error, body: &[u8]) -> SourceError {
        let status = 200;
        if err.classify() == serde_json::error::Category::Eof {
            SourceError::Transport {
                provider: self.provider.name,
                kind: TransportKind::Truncated,
                message: format!("the JSON body ended after {} bytes", body.len()),
            }
        } else {
            SourceError::BadResponse {
                provider: self.provider.name,
                status,
                problem: format!("the body is not the documented JSON ({err})"),
                excerpt: self.excerpt(body),
            }
        }
    }

    fn transport(&self, err: &reqwest::Error) -> SourceError {
        let kind = if err.is_timeout() {
            TransportKind::Timeout
        } else if err.is_body() || err.is_decode() {
            TransportKind::Truncated
        } else {
            TransportKind::Connection
        };
        let mut message = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        SourceError::Transport {
            provider: self.provider.name,
            kind,
            message: self.scrub(&message),
        }
    }

    /// The start of a body as text, at most 200 characters, with the key scrubbed out.
    fn excerpt(&self, body: &[u8]) -> String {
        let text = String::from_utf8_lossy(&body[..body.len().min(400)]);
        let mut excerpt: String = text.chars().take(200).collect();
        if text.chars().count() > 200 || body.len() > 400 {
            excerpt.push('…');
        }
        self.scrub(&excerpt)
    }

    /// `text` with every occurrence of the key replaced.
    fn scrub(&self, text: &str) -> String {
        let key = self.key.expose();
        if key.is_empty() {
            text.to_owned()
        } else {
            text.replace(key, "[redacted]")
        }
    }
}

/// The path and query of `url`: `/v1/payments?page=2`.
fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

/// The `X-RateLimit-*` headers of a response.
pub fn rate_limit(headers: &HeaderMap) -> RateLimitHeaders {
    fn number<N: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<N> {
        headers.get(name)?.to_str().ok()?.trim().parse().ok()
    }
    RateLimitHeaders {
        limit: number(headers, "x-ratelimit-limit"),
        remaining: number(headers, "x-ratelimit-remaining"),
        reset: number(headers, "x-ratelimit-reset"),
    }
}

/// How long a 429 or 503 asks to wait: `Retry-After` in seconds or as an HTTP date, else
/// `X-RateLimit-Reset` (a unix timestamp), measured from `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let until = |at: SystemTime| at.duration_since(now).unwrap_or(Duration::ZERO);
    if let Some(value) = headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
    {
        let value = value.trim();
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds));
        }
        if let Ok(at) = httpdate::parse_http_date(value) {
            return Some(until(at));
        }
    }
    let reset: u64 = headers
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(until(SystemTime::UNIX_EPOCH + Duration::from_secs(reset)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn only_ids_that_need_no_escaping_go_into_a_path() {
        for id in ["PP0000000001", "plk_00ab", "a-b_c", "9"] {
            assert_eq!(path_segment(id), Ok(id));
        }
        for (id, said) in [
            ("", "is empty"),
            ("PP1/../customers", "holds `/`"),
            ("..", "holds `.`"),
            ("PP1?limit=1", "holds `?`"),
            ("PP%2F1", "holds `%`"),
            ("PP 1", "holds ` `"),
            ("PP\u{202e}1", "`PP\\u{202e}1` holds `\\u{202e}`"),
            ("plk_é", "holds `\\u{e9}`"),
        ] {
            let refused = path_segment(id).unwrap_err();
            assert!(refused.contains(said), "{id:?}: {refused}");
        }
    }

    #[test]
    fn retry_after_reads_seconds_dates_and_reset() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers, now), None);
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("1700000007"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Tue, 14 Nov 2023 22:13:30 GMT"),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(10)));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(3)));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Tue, 14 Nov 2023 22:00:00 GMT"),
        );
        assert_eq!(
            retry_after(&headers, now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
    }

    static TEST: Provider = Provider {
        name: "Test",
        key_variable: "TEST_API_KEY",
        forbidden_advice: "",
        error_message: |_| None,
    };

    fn client(base: &str) -> ApiClient {
        ApiClient::new(
            &TEST,
            ClientConfig::new(base, "test_secret_key", "test/1.0"),
        )
        .unwrap()
    }

    #[test]
    fn next_links_absolute_or_relative_continue_the_listing_relative_to_the_base() {
        let api = client("https://api.example.com/v1");
        for (request, next) in [
            (
                "/payment-links",
                "https://api.example.com/v1/payment-links?page=2",
            ),
            ("/payment-links", "/v1/payment-links?page=2"),
            ("/payment-links?page=1", "?page=2"),
            ("/payment-links", "payment-links?page=2"),
            ("/payment-links", "  /v1/payment-links/?page=2 "),
        ] {
            let relative = api.relative_next(request, next).unwrap();
            assert!(
                relative == "/payment-links?page=2" || relative == "/payment-links/?page=2",
                "{next} from {request}: {relative}"
            );
        }
        let root = client("http://127.0.0.1:8080");
        assert_eq!(
            root.relative_next("/payments?limit=100", "/payments?limit=100&cursor=c2")
                .unwrap(),
            "/payments?limit=100&cursor=c2"
        );
    }

    #[test]
    fn next_links_to_another_listing_or_origin_are_refused_naming_them() {
        let api = client("https://api.example.com/v1");
        for (request, next, named) in [
            (
                "/payment-links",
                "/v1/customers?page=2",
                "/v1/customers?page=2",
            ),
            (
                "/payment-links/plk_a/payments",
                "https://api.example.com/v1/payment-links/plk_b/payments?page=2",
                "/v1/payment-links/plk_b/payments?page=2",
            ),
            (
                "/payment-links",
                "/v1/payment-links/../customers?page=2",
                "/v1/customers?page=2",
            ),
            (
                "/payment-links",
                "/v2/payment-links?page=2",
                "/v2/payment-links?page=2",
            ),
            (
                "/payment-links",
                "https://evil.example.com/v1/payment-links?page=2",
                "https://evil.example.com",
            ),
            (
                "/payment-links",
                "http://api.example.com/v1/payment-links?page=2",
                "http://api.example.com",
            ),
        ] {
            let err = api.relative_next(request, next).unwrap_err();
            assert!(
                matches!(&err, SourceError::Refused(m) if m.contains(named)),
                "{next} from {request}: {err}"
            );
            assert!(!err.is_retryable());
        }
    }

    #[test]
    fn loopback_hosts() {
        for url in [
            "http://127.0.0.1:8080",
            "http://127.8.0.1",
            "http://[::1]:1",
            "http://localhost:3000",
            "http://LOCALHOST",
        ] {
            assert!(is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
        for url in [
            "http://10.0.0.1",
            "http://localhost.example.com",
            "http://api.paypro.nl",
        ] {
            assert!(!is_loopback(&Url::parse(url).unwrap()), "{url}");
        }
    }
}
