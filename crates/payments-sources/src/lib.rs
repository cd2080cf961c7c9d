//! The source registry: one serializable [`SourceSpec`] per payment source, one
//! [`SourceSpec::validate`] that holds every rule a spec must keep, and one [`SourceSpec::build`]
//! that turns a valid spec and its API key into a [`PaymentSource`].
//!
//! A spec says which provider ([`Source`]), where its API is, how its requests are paced
//! ([`RateLimitSpec`]), how often it is synced (`every`) and under which *name* its webhook
//! secret is kept ([`SecretRef`]). It never holds an API key: the key is given to
//! [`SourceSpec::build`] as a [`SecretString`], so a spec can be stored, printed and sent
//! around freely.
//!
//! Everything that builds a source goes through here (`payments sync`, the fleet worker,
//! `payments accounts add`, the demo, the tests), so a rule is kept in one place, and a new
//! provider is added in its own crate, in `payments_model::Source` and in this crate alone.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//!
//! use payments_sources::{RateLimitSpec, Source, SourceSpec, SpecError};
//! use secrecy::SecretString;
//!
//! let spec = SourceSpec::new(Source::Mkp).with_rate_limit(RateLimitSpec::Per {
//!     limit: 10,
//!     window: Duration::from_secs(2),
//! });
//! let source = spec.build(&SecretString::from("mkp_key")).unwrap();
//! assert_eq!(source.name(), "mkp");
//! assert_eq!(source.rate_limit().unwrap().limit, 10);
//!
//! // A limit of 0 could never make a request: refused, saying what to do.
//! let zero = spec.with_rate_limit(RateLimitSpec::Per { limit: 0, window: Duration::from_secs(60) });
//! assert!(matches!(zero.validate(), Err(SpecError::ZeroRateLimit { .. })));
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mkp_api::{MkpClient, MkpSource};
use payments_http::{ClientConfig, ConfigError};
use payments_model::{ChangePage, Cursor, ListingOrder, OnePayment, Page, RateLimit, SourceError};
use paypro_api::{PayProClient, PayProSource};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use payments_model::{PaymentSource, Source};

/// How long after a run a source is due again, unless its spec says otherwise: 5 minutes.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(300);

/// The shortest `every` a spec may ask for: every run costs requests of the key's rate limit
/// and a run of the store, so a source is synced at most every 10 seconds.
pub const MIN_EVERY: Duration = Duration::from_secs(10);

/// The shortest rate-limit window a spec may ask for.
pub const MIN_WINDOW: Duration = Duration::from_secs(1);

/// The longest name a [`SecretRef`] may have.
pub const MAX_SECRET_REF_LEN: usize = 64;

/// The public API of `provider`, where its sources go unless a spec names another URL.
pub const fn default_base_url(provider: Source) -> &'static str {
    match provider {
        Source::Mkp => mkp_api::DEFAULT_BASE_URL,
        Source::PayPro => paypro_api::DEFAULT_BASE_URL,
    }
}

/// The rate limit `provider` documents for one key (MKP: 60 per rolling minute), `None` when it
/// documents none (PayPro).
pub const fn documented_rate_limit(provider: Source) -> Option<RateLimit> {
    match provider {
        Source::Mkp => Some(mkp_api::RATE_LIMIT),
        Source::PayPro => None,
    }
}

/// The provider's name in messages: `MKP`, `PayPro`.
pub const fn display_name(provider: Source) -> &'static str {
    match provider {
        Source::Mkp => "MKP",
        Source::PayPro => "PayPro",
    }
}

/// One payment source: which provider, where, how paced, how often synced. Never its API key.
///
/// Serialized (serde) as an object whose durations are whole seconds; every field but
/// `provider` may be left out and takes its default:
///
/// ```json
/// {"provider": "mkp", "base_url": "https://api.mijnklantportaal.nl/v1",
///  "rate_limit": {"per": {"limit": 60, "window_secs": 60}}, "every_secs": 300,
///  "webhook_secret": "MKP_WEBHOOK_SECRET"}
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// The provider.
    pub provider: Source,
    /// The provider's API; `None` for its public one ([`default_base_url`]), which follows the
    /// provider if it ever moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// How its requests are paced.
    #[serde(default, skip_serializing_if = "RateLimitSpec::is_documented")]
    pub rate_limit: RateLimitSpec,
    /// How long after a run ends the next one is due ([`DEFAULT_EVERY`]; at least
    /// [`MIN_EVERY`]).
    #[serde(
        default = "default_every",
        rename = "every_secs",
        with = "whole_seconds"
    )]
    pub every: Duration,
    /// The name under which the secret that signs the provider's webhooks is kept, for
    /// `payments serve`; never the secret itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<SecretRef>,
}

fn default_every() -> Duration {
    DEFAULT_EVERY
}

/// How a source's requests are paced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitSpec {
    /// What the provider documents ([`documented_rate_limit`]): MKP's 60 per rolling minute,
    /// none for PayPro.
    #[default]
    Documented,
    /// At most `limit` requests in any rolling `window`, for a key whose contract differs from
    /// the documented one.
    Per {
        /// Requests allowed per window (at least 1).
        limit: u32,
        /// The window (at least [`MIN_WINDOW`], whole seconds).
        #[serde(rename = "window_secs", with = "whole_seconds")]
        window: Duration,
    },
    /// Not paced at all: for a test server, or a contract without a limit.
    Unlimited,
}

impl RateLimitSpec {
    /// Whether this is [`RateLimitSpec::Documented`].
    pub fn is_documented(&self) -> bool {
        *self == RateLimitSpec::Documented
    }

    /// The pacing that overrides the documented limit in part or whole: `limit` requests per
    /// `window`, each taken from `provider`'s documented limit when it is `None`. Both `None`
    /// is [`RateLimitSpec::Documented`]. Fails when a part is missing and the provider
    /// documents no limit to take it from.
    pub fn overriding(
        provider: Source,
        limit: Option<u32>,
        window: Option<Duration>,
    ) -> Result<RateLimitSpec, SpecError> {
        if limit.is_none() && window.is_none() {
            return Ok(RateLimitSpec::Documented);
        }
        let documented = documented_rate_limit(provider);
        let limit = limit.or(documented.map(|rate| rate.limit));
        let window = window.or(documented.map(|rate| rate.window));
        match (limit, window) {
            (Some(limit), Some(window)) => Ok(RateLimitSpec::Per { limit, window }),
            _ => Err(SpecError::PartialRateLimit { provider }),
        }
    }

    /// The rate limit the source declares under this pacing (`None`: unpaced).
    pub fn resolve(&self, provider: Source) -> Option<RateLimit> {
        match *self {
            RateLimitSpec::Documented => documented_rate_limit(provider),
            RateLimitSpec::Per { limit, window } => Some(RateLimit::per(limit, window)),
            RateLimitSpec::Unlimited => None,
        }
    }
}

/// The name of a secret kept elsewhere (an environment variable, a secret store's key), such as
/// `PAYPRO_WEBHOOK_SECRET`: 1 to [`MAX_SECRET_REF_LEN`] capital letters, digits and `_`,
/// starting with a letter. A spec holds this name, never the secret.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(String);

impl SecretRef {
    /// A reference to the secret named `name` (checked by [`SourceSpec::validate`]).
    pub fn new(name: impl Into<String>) -> SecretRef {
        SecretRef(name.into())
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.0
    }

    fn is_valid(&self) -> bool {
        let mut chars = self.0.chars();
        self.0.len() <= MAX_SECRET_REF_LEN
            && chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A valid name is shown; anything else might be a secret given by mistake.
        if self.is_valid() {
            write!(f, "SecretRef({:?})", self.0)
        } else {
            f.write_str("SecretRef([not a name, not shown])")
        }
    }
}

/// Why a spec is refused, or its source could not be built. Each message says what was wrong
/// and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The rate limit allows 0 requests per window, so no request could ever be made.
    #[error(
        "the rate limit of {} allows 0 requests per window, so no request could ever be made; allow at least 1{}",
        display_name(*provider),
        documented(*provider)
    )]
    ZeroRateLimit {
        /// The provider.
        provider: Source,
    },
    /// The rate-limit window is shorter than [`MIN_WINDOW`].
    #[error(
        "the rate-limit window of {} is {window:?}; make it at least 1 second{}",
        display_name(*provider),
        documented(*provider)
    )]
    ShortWindow {
        /// The provider.
        provider: Source,
        /// The window asked for.
        window: Duration,
    },
    /// Part of a rate limit is missing and the provider documents none to take it from.
    #[error(
        "{} documents no rate limit to complete the one given; give both the limit and the window",
        display_name(*provider)
    )]
    PartialRateLimit {
        /// The provider.
        provider: Source,
    },
    /// A duration that is stored in whole seconds has a fraction of a second.
    #[error("{what} is {value:?}; give it in whole seconds")]
    Fraction {
        /// What it is: `every`, `the rate-limit window`.
        what: &'static str,
        /// The duration asked for.
        value: Duration,
    },
    /// The base URL breaks `payments_http::check_base_url` (it does not parse, is plain http
    /// off loopback, has no host, or has a query or fragment), or the HTTP client could not be
    /// built: the client's own error, in its own words.
    #[error(transparent)]
    Client(#[from] ConfigError),
    /// `every` is shorter than [`MIN_EVERY`].
    #[error(
        "the source would be synced every {every:?}; make it at least 10s (each run spends requests of the key's rate limit), 5m by default"
    )]
    ShortEvery {
        /// The `every` asked for.
        every: Duration,
    },
    /// The webhook secret reference is not a name (it is not shown: it may be the secret).
    #[error(
        "the webhook secret reference is not a name: give the name under which the secret is kept (1 to 64 capital letters, digits and `_`, starting with a letter, such as PAYPRO_WEBHOOK_SECRET), never the secret itself"
    )]
    BadSecretRef,
}

/// `; MKP documents 60 requests per 60 seconds`, or nothing for a provider without a limit.
fn documented(provider: Source) -> String {
    documented_rate_limit(provider)
        .map(|rate| {
            format!(
                "; {} documents {} requests per {} seconds",
                display_name(provider),
                rate.limit,
                rate.window.as_secs()
            )
        })
        .unwrap_or_default()
}

/// What building a source may tune beyond its spec: client limits that are no part of what a
/// source *is*.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BuildOptions {
    /// The largest response body accepted, in bytes (`None`: the client's default, 8 MiB).
    pub max_body_bytes: Option<usize>,
}

impl BuildOptions {
    /// The client's defaults, with bodies of at most `max_body_bytes` when it is `Some`.
    pub fn max_body_bytes(max_body_bytes: Option<usize>) -> BuildOptions {
        BuildOptions { max_body_bytes }
    }
}

impl SourceSpec {
    /// A spec of `provider` with every default: its public API, its documented rate limit,
    /// synced every [`DEFAULT_EVERY`], no webhook secret.
    pub fn new(provider: Source) -> SourceSpec {
        SourceSpec {
            provider,
            base_url: None,
            rate_limit: RateLimitSpec::Documented,
            every: DEFAULT_EVERY,
            webhook_secret: None,
        }
    }

    /// This spec with its API at `base_url`.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> SourceSpec {
        self.base_url = Some(base_url.into());
        self
    }

    /// This spec paced by `rate_limit`.
    pub fn with_rate_limit(mut self, rate_limit: RateLimitSpec) -> SourceSpec {
        self.rate_limit = rate_limit;
        self
    }

    /// This spec synced every `every`.
    pub fn with_every(mut self, every: Duration) -> SourceSpec {
        self.every = every;
        self
    }

    /// This spec with its webhook secret kept under `name`.
    pub fn with_webhook_secret(mut self, name: impl Into<String>) -> SourceSpec {
        self.webhook_secret = Some(SecretRef::new(name));
        self
    }

    /// The base URL in use: the spec's, or the provider's public one.
    pub fn base_url(&self) -> &str {
        self.base_url
            .as_deref()
            .unwrap_or(default_base_url(self.provider))
    }

    /// The rate limit the built source declares (`None`: unpaced).
    pub fn resolved_rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit.resolve(self.provider)
    }

    /// Checks every rule of a spec, in this order, and returns the first that is broken:
    ///
    /// - a rate limit allows at least 1 request per window ([`SpecError::ZeroRateLimit`]), in
    ///   a window of at least [`MIN_WINDOW`] ([`SpecError::ShortWindow`]) in whole seconds;
    /// - the base URL parses, is `https://` (or `http://` on loopback, for a sandbox), has a
    ///   host and no query or fragment ([`SpecError::Client`]);
    /// - `every` is at least [`MIN_EVERY`] ([`SpecError::ShortEvery`]), in whole seconds;
    /// - a webhook secret reference is a name ([`SpecError::BadSecretRef`]).
    pub fn validate(&self) -> Result<(), SpecError> {
        if let RateLimitSpec::Per { limit, window } = self.rate_limit {
            if limit == 0 {
                return Err(SpecError::ZeroRateLimit {
                    provider: self.provider,
                });
            }
            if window < MIN_WINDOW {
                return Err(SpecError::ShortWindow {
                    provider: self.provider,
                    window,
                });
            }
            whole_seconds::check("the rate-limit window", window)?;
        }
        check_base_url(self.base_url())?;
        if self.every < MIN_EVERY {
            return Err(SpecError::ShortEvery { every: self.every });
        }
        whole_seconds::check("every", self.every)?;
        if self.webhook_secret.as_ref().is_some_and(|s| !s.is_valid()) {
            return Err(SpecError::BadSecretRef);
        }
        Ok(())
    }

    /// The source this spec describes, reached with `key`: [`SourceSpec::validate`]d first,
    /// and declaring the rate limit the spec asks for.
    pub fn build(&self, key: &SecretString) -> Result<Arc<dyn PaymentSource>, SpecError> {
        self.build_with(key, BuildOptions::default())
    }

    /// [`SourceSpec::build`] with client limits beyond the spec.
    pub fn build_with(
        &self,
        key: &SecretString,
        options: BuildOptions,
    ) -> Result<Arc<dyn PaymentSource>, SpecError> {
        self.validate()?;
        let config = |mut config: ClientConfig| {
            if let Some(cap) = options.max_body_bytes {
                config.max_body_bytes = cap;
            }
            config
        };
        let rate_limit = self.resolved_rate_limit();
        let key = key.expose_secret();
        Ok(match self.provider {
            Source::Mkp => {
                let client =
                    MkpClient::with_config(config(MkpClient::config(self.base_url(), key)))?;
                Arc::new(MkpSource::new(client).with_rate_limit(rate_limit))
            }
            Source::PayPro => {
                let client =
                    PayProClient::with_config(config(PayProClient::config(self.base_url(), key)))?;
                paced(Arc::new(PayProSource::new(client)), rate_limit)
            }
        })
    }
}

/// The rule `payments_http::ApiClient` keeps for a base URL, checked before any client is built.
fn check_base_url(base_url: &str) -> Result<(), SpecError> {
    payments_http::check_base_url(base_url)?;
    Ok(())
}

/// `source`, declaring `rate_limit` instead of its own when they differ.
fn paced(source: Arc<dyn PaymentSource>, rate_limit: Option<RateLimit>) -> Arc<dyn PaymentSource> {
    if source.rate_limit() == rate_limit {
        source
    } else {
        Arc::new(Paced { source, rate_limit })
    }
}

/// A source that declares another rate limit than its own, for a provider whose source cannot
/// be given one. Every other method is the inner source's (each is forwarded, defaults
/// included, so that a method the trait gains must be added here too).
struct Paced {
    source: Arc<dyn PaymentSource>,
    rate_limit: Option<RateLimit>,
}

#[async_trait]
impl PaymentSource for Paced {
    fn name(&self) -> &str {
        self.source.name()
    }

    fn order(&self) -> ListingOrder {
        self.source.order()
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    async fn page(&self, cursor: Option<&Cursor>) -> Result<Page, SourceError> {
        self.source.page(cursor).await
    }

    fn has_change_feed(&self) -> bool {
        self.source.has_change_feed()
    }

    async fn changes(&self, cursor: Option<&Cursor>) -> Result<ChangePage, SourceError> {
        self.source.changes(cursor).await
    }

    async fn chargebacks(&self, cursor: Option<&Cursor>) -> Result<ChangePage, SourceError> {
        self.source.chargebacks(cursor).await
    }

    async fn payment(&self, source_id: &str) -> Result<OnePayment, SourceError> {
        self.source.payment(source_id).await
    }
}

/// Durations as whole seconds, in serde and in the rule that keeps them whole.
mod whole_seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    use crate::SpecError;

    pub(crate) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }

    /// Fails when `value` has a fraction of a second, which its serialized form would lose.
    pub(crate) fn check(what: &'static str, value: Duration) -> Result<(), SpecError> {
        if value.subsec_nanos() == 0 {
            Ok(())
        } else {
            Err(SpecError::Fraction { what, value })
        }
    }
}

#[cfg(test)]
mod tests;
