//! The one mapping between the options `payments-postgres` stores for an account's source
//! ([`SourceOptions`], JSON in `ledger.account_sources`) and the registry's [`SourceSpec`].
//!
//! The store keeps what was asked (a partial rate limit stays partial, an absent base URL stays
//! absent, so that it follows the provider), and knows no provider; the spec is what runs.

use std::time::Duration;

use payments_postgres::SourceOptions;
use payments_sources::{DEFAULT_EVERY, MIN_EVERY, RateLimitSpec, Source, SourceSpec, SpecError};

/// Why stored options do not make a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// The source's name is no provider this version knows.
    #[error("`{0}` is not a source this version knows; upgrade the workers or remove the account")]
    UnknownSource(String),
    /// The options do not make a spec (a partial rate limit of a provider without a documented
    /// one).
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The stored options do not read back; the message names them.
    #[error("{0}")]
    Unreadable(String),
    /// The spec asks for what an account's stored options cannot hold.
    #[error("{0}")]
    NotStorable(&'static str),
}

/// The spec of the source `source_name` (its `PaymentSource::name`, the provider's word) stored
/// with `options`: absent fields take the registry's defaults, and a partial rate limit is
/// completed from the provider's documented one ([`RateLimitSpec::overriding`]). The spec is
/// not validated here: [`SourceSpec::build`] and [`SourceSpec::validate`] do that.
///
/// One tolerance, for accounts stored before the registry: `payments accounts add` then took
/// any `--every` and the worker ran it at least every [`MIN_EVERY`]. A stored `every_secs`
/// below that reads as [`MIN_EVERY`], so such an account keeps syncing as it did until
/// `payments accounts update --every` gives it a schedule of its own.
pub fn spec_of(source_name: &str, options: &SourceOptions) -> Result<SourceSpec, OptionsError> {
    let provider = Source::from_word(source_name)
        .ok_or_else(|| OptionsError::UnknownSource(source_name.to_owned()))?;
    Ok(SourceSpec {
        base_url: options.base_url.clone(),
        rate_limit: RateLimitSpec::overriding(
            provider,
            options.rate_limit,
            options.rate_window_secs.map(Duration::from_secs),
        )?,
        every: options.every_secs.map_or(DEFAULT_EVERY, |secs| {
            Duration::from_secs(secs).max(MIN_EVERY)
        }),
        ..SourceSpec::new(provider)
    })
}

/// The source name and the options to store for `spec`, which [`spec_of`] reads back as the
/// same spec. Refused, rather than stored as something else: an unpaced source (stored options
/// without a rate limit mean the documented one) and a webhook secret reference (not stored
/// yet: `payments serve` will add it).
pub fn options_of(spec: &SourceSpec) -> Result<(String, SourceOptions), OptionsError> {
    let (rate_limit, rate_window_secs) = match spec.rate_limit {
        RateLimitSpec::Per { limit, window } => (Some(limit), Some(window.as_secs())),
        RateLimitSpec::Documented => (None, None),
        RateLimitSpec::Unlimited => {
            return Err(OptionsError::NotStorable(
                "an account's source cannot be stored unpaced; give it a rate limit, or leave the provider's documented one",
            ));
        }
    };
    if spec.webhook_secret.is_some() {
        return Err(OptionsError::NotStorable(
            "an account's source cannot keep a webhook secret reference yet; leave it out",
        ));
    }
    Ok((
        spec.provider.as_str().to_owned(),
        SourceOptions {
            base_url: spec.base_url.clone(),
            rate_limit,
            rate_window_secs,
            every_secs: Some(spec.every.as_secs()),
        },
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use payments_postgres::SourceOptions;
    use payments_sources::{RateLimitSpec, Source, SourceSpec};

    use super::{OptionsError, options_of, spec_of};

    /// Options as `payments accounts add` stored them, JSON and all, read as specs.
    #[test]
    fn stored_options_read_as_specs() {
        let secs = Duration::from_secs;
        let table: [(&str, &str, SourceSpec); 7] = [
            // Stored by a version that took any --every and ran it every 10 s at least.
            (
                "paypro",
                r#"{"every_secs": 1}"#,
                SourceSpec::new(Source::PayPro).with_every(secs(10)),
            ),
            (
                "paypro",
                r#"{"every_secs": 0}"#,
                SourceSpec::new(Source::PayPro).with_every(secs(10)),
            ),
            ("paypro", "{}", SourceSpec::new(Source::PayPro)),
            (
                "mkp",
                r#"{"every_secs": 300}"#,
                SourceSpec::new(Source::Mkp).with_every(secs(300)),
            ),
            (
                "mkp",
                r#"{"base_url": "http://127.0.0.1:9/v1", "rate_limit": 10, "rate_window_secs": 2, "every_secs": 3600}"#,
                SourceSpec::new(Source::Mkp)
                    .with_base_url("http://127.0.0.1:9/v1")
                    .with_rate_limit(RateLimitSpec::Per {
                        limit: 10,
                        window: secs(2),
                    })
                    .with_every(secs(3600)),
            ),
            // A partial rate limit takes the rest from MKP's documented 60 per 60 s.
            (
                "mkp",
                r#"{"rate_limit": 10}"#,
                SourceSpec::new(Source::Mkp).with_rate_limit(RateLimitSpec::Per {
                    limit: 10,
                    window: secs(60),
                }),
            ),
            (
                "mkp",
                r#"{"rate_window_secs": 2}"#,
                SourceSpec::new(Source::Mkp).with_rate_limit(RateLimitSpec::Per {
                    limit: 60,
                    window: secs(2),
                }),
            ),
        ];
        for (name, json, spec) in table {
            let options: SourceOptions = serde_json::from_str(json).unwrap();
            assert_eq!(spec_of(name, &options), Ok(spec), "{name} {json}");
        }
    }

    #[test]
    fn a_source_this_version_does_not_know_is_named() {
        let error = spec_of("stripe", &SourceOptions::default()).unwrap_err();
        assert_eq!(error, OptionsError::UnknownSource("stripe".to_owned()));
        assert_eq!(
            error.to_string(),
            "`stripe` is not a source this version knows; upgrade the workers or remove the account"
        );
    }

    /// Stored options are not validated on reading (a zero rate limit is refused by build, not
    /// turned into 1).
    #[test]
    fn a_broken_rule_is_kept_for_validate_to_refuse() {
        let options = SourceOptions {
            rate_limit: Some(0),
            ..SourceOptions::default()
        };
        let spec = spec_of("mkp", &options).unwrap();
        assert!(spec.validate().is_err());
    }

    #[test]
    fn a_spec_stored_reads_back_the_same() {
        for spec in [
            SourceSpec::new(Source::Mkp),
            SourceSpec::new(Source::PayPro).with_every(Duration::from_secs(90)),
            SourceSpec::new(Source::Mkp)
                .with_base_url("https://mkp.example.com/v1")
                .with_rate_limit(RateLimitSpec::Per {
                    limit: 5,
                    window: Duration::from_secs(3),
                }),
        ] {
            let (name, options) = options_of(&spec).unwrap();
            assert_eq!(spec_of(&name, &options), Ok(spec));
        }
        for spec in [
            SourceSpec::new(Source::Mkp).with_rate_limit(RateLimitSpec::Unlimited),
            SourceSpec::new(Source::PayPro).with_webhook_secret("PAYPRO_WEBHOOK_SECRET"),
        ] {
            assert!(matches!(
                options_of(&spec),
                Err(OptionsError::NotStorable(_))
            ));
        }
    }
}
