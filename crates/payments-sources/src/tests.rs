//! The registry's rules, table by table.

use std::time::Duration;

use secrecy::SecretString;

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn per(limit: u32, window: Duration) -> RateLimitSpec {
    RateLimitSpec::Per { limit, window }
}

/// Every rule of `validate`, with a spec that keeps it and one that breaks it, and the words of
/// the error.
#[test]
fn validate_keeps_every_rule_and_says_what_to_do() {
    let mkp = || SourceSpec::new(Source::Mkp);
    let paypro = || SourceSpec::new(Source::PayPro);
    let good = [
        mkp(),
        paypro(),
        mkp().with_rate_limit(per(1, secs(1))),
        mkp().with_rate_limit(per(60, secs(60))),
        mkp().with_rate_limit(RateLimitSpec::Unlimited),
        paypro().with_rate_limit(per(10, secs(2))),
        mkp().with_base_url("https://mkp.example.com/v1"),
        mkp().with_base_url("http://127.0.0.1:8080/mkp"),
        paypro().with_base_url("http://localhost:9000"),
        paypro().with_base_url("http://[::1]:9000/"),
        mkp().with_every(MIN_EVERY),
        mkp().with_every(secs(24 * 3600)),
        paypro().with_webhook_secret("PAYPRO_WEBHOOK_SECRET"),
        mkp().with_webhook_secret("A"),
        mkp().with_webhook_secret("S".repeat(MAX_SECRET_REF_LEN)),
    ];
    for spec in good {
        assert_eq!(spec.validate(), Ok(()), "{spec:?}");
    }
    let bad: [(SourceSpec, &str); 17] = [
        (
            mkp().with_rate_limit(per(0, secs(60))),
            "the rate limit of MKP allows 0 requests per window, so no request could ever be made; allow at least 1; MKP documents 60 requests per 60 seconds",
        ),
        (
            paypro().with_rate_limit(per(0, secs(60))),
            "the rate limit of PayPro allows 0 requests per window, so no request could ever be made; allow at least 1",
        ),
        (
            mkp().with_rate_limit(per(10, Duration::ZERO)),
            "the rate-limit window of MKP is 0ns; make it at least 1 second; MKP documents 60 requests per 60 seconds",
        ),
        (
            mkp().with_rate_limit(per(10, Duration::from_millis(999))),
            "the rate-limit window of MKP is 999ms; make it at least 1 second; MKP documents 60 requests per 60 seconds",
        ),
        (
            mkp().with_rate_limit(per(10, Duration::from_millis(1500))),
            "the rate-limit window is 1.5s; give it in whole seconds",
        ),
        (
            mkp().with_base_url("not a url"),
            "base URL `not a url` is not usable: relative URL without a base",
        ),
        (
            mkp().with_base_url("ftp://mkp.example.com"),
            "base URL `ftp://mkp.example.com` is not usable: the scheme must be https, not `ftp`",
        ),
        (
            paypro().with_base_url("http://payments.example.com"),
            "base URL `http://payments.example.com` uses plain http, which would send the API key unencrypted; use https:// (plain http is allowed only on loopback, for the sandbox)",
        ),
        (
            mkp().with_base_url("https://mkp.example.com/v1?key=1"),
            "base URL `https://mkp.example.com/v1?key=1` is not usable: it must not have a query or fragment",
        ),
        (
            mkp().with_base_url("https://mkp.example.com/v1#top"),
            "base URL `https://mkp.example.com/v1#top` is not usable: it must not have a query or fragment",
        ),
        (
            mkp().with_every(secs(9)),
            "the source would be synced every 9s; make it at least 10s (each run spends requests of the key's rate limit), 5m by default",
        ),
        (
            mkp().with_every(Duration::ZERO),
            "the source would be synced every 0ns; make it at least 10s (each run spends requests of the key's rate limit), 5m by default",
        ),
        (
            mkp().with_every(Duration::from_millis(10_500)),
            "every is 10.5s; give it in whole seconds",
        ),
        (
            mkp().with_webhook_secret(""),
            "the webhook secret reference is not a name: give the name under which the secret is kept (1 to 64 capital letters, digits and `_`, starting with a letter, such as PAYPRO_WEBHOOK_SECRET), never the secret itself",
        ),
        (
            mkp().with_webhook_secret("whsec_9f8e7d6c5b4a"),
            "the webhook secret reference is not a name: give the name under which the secret is kept (1 to 64 capital letters, digits and `_`, starting with a letter, such as PAYPRO_WEBHOOK_SECRET), never the secret itself",
        ),
        (
            mkp().with_webhook_secret("1_SECRET"),
            "the webhook secret reference is not a name: give the name under which the secret is kept (1 to 64 capital letters, digits and `_`, starting with a letter, such as PAYPRO_WEBHOOK_SECRET), never the secret itself",
        ),
        (
            mkp().with_webhook_secret("S".repeat(MAX_SECRET_REF_LEN + 1)),
            "the webhook secret reference is not a name: give the name under which the secret is kept (1 to 64 capital letters, digits and `_`, starting with a letter, such as PAYPRO_WEBHOOK_SECRET), never the secret itself",
        ),
    ];
    for (spec, message) in bad {
        match spec.validate() {
            Err(error) => assert_eq!(error.to_string(), message, "{spec:?}"),
            Ok(()) => panic!("{spec:?} was accepted; expected: {message}"),
        }
    }
}

/// A spec that breaks a rule is never built: `build` validates first.
#[test]
fn build_refuses_what_validate_refuses() {
    let key = SecretString::from("key");
    for spec in [
        SourceSpec::new(Source::Mkp).with_rate_limit(per(0, secs(60))),
        SourceSpec::new(Source::PayPro).with_every(secs(1)),
        SourceSpec::new(Source::PayPro).with_base_url("http://payments.example.com"),
    ] {
        let error = spec.build(&key).err();
        assert_eq!(error, spec.validate().err(), "{spec:?}");
        assert!(error.is_some(), "{spec:?}");
    }
}

#[test]
fn a_spec_round_trips_through_serde() {
    let specs = [
        SourceSpec::new(Source::Mkp),
        SourceSpec::new(Source::PayPro),
        SourceSpec::new(Source::Mkp)
            .with_base_url("http://127.0.0.1:4000/mkp")
            .with_rate_limit(per(10, secs(2)))
            .with_every(secs(90))
            .with_webhook_secret("MKP_WEBHOOK_SECRET"),
        SourceSpec::new(Source::PayPro).with_rate_limit(RateLimitSpec::Unlimited),
    ];
    for spec in specs {
        let json = serde_json::to_string(&spec).unwrap();
        let back: SourceSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec, "{json}");
    }
}

#[test]
fn the_serialized_form_is_plain_and_defaults_are_left_out() {
    let spec = SourceSpec::new(Source::Mkp)
        .with_base_url("https://mkp.example.com/v1")
        .with_rate_limit(per(10, secs(2)))
        .with_every(secs(90))
        .with_webhook_secret("MKP_WEBHOOK_SECRET");
    assert_eq!(
        serde_json::to_value(&spec).unwrap(),
        serde_json::json!({
            "provider": "mkp",
            "base_url": "https://mkp.example.com/v1",
            "rate_limit": {"per": {"limit": 10, "window_secs": 2}},
            "every_secs": 90,
            "webhook_secret": "MKP_WEBHOOK_SECRET",
        })
    );
    assert_eq!(
        serde_json::to_value(SourceSpec::new(Source::PayPro)).unwrap(),
        serde_json::json!({"provider": "paypro", "every_secs": 300})
    );
    let minimal: SourceSpec = serde_json::from_str(r#"{"provider": "paypro"}"#).unwrap();
    assert_eq!(minimal, SourceSpec::new(Source::PayPro));
    let unlimited: SourceSpec =
        serde_json::from_str(r#"{"provider": "mkp", "rate_limit": "unlimited"}"#).unwrap();
    assert_eq!(unlimited.rate_limit, RateLimitSpec::Unlimited);
    // An API key has no place in a spec: a field the spec does not know is refused.
    let keyed = serde_json::from_str::<SourceSpec>(r#"{"provider": "mkp", "api_key": "x"}"#);
    assert!(keyed.unwrap_err().to_string().contains("api_key"));
}

/// The built source declares exactly the rate limit the spec asks for, for each provider.
#[test]
fn build_gives_a_source_with_the_rate_limit_asked() {
    let key = SecretString::from("key");
    let cases = [
        (
            Source::Mkp,
            RateLimitSpec::Documented,
            Some(mkp_api::RATE_LIMIT),
        ),
        (
            Source::Mkp,
            per(10, secs(2)),
            Some(RateLimit::per(10, secs(2))),
        ),
        (Source::Mkp, RateLimitSpec::Unlimited, None),
        (Source::PayPro, RateLimitSpec::Documented, None),
        (
            Source::PayPro,
            per(5, secs(3)),
            Some(RateLimit::per(5, secs(3))),
        ),
        (Source::PayPro, RateLimitSpec::Unlimited, None),
    ];
    for (provider, rate_limit, declared) in cases {
        let spec = SourceSpec::new(provider).with_rate_limit(rate_limit);
        let source = spec.build(&key).unwrap();
        assert_eq!(source.rate_limit(), declared, "{spec:?}");
        assert_eq!(source.name(), provider.as_str(), "{spec:?}");
    }
    // A paced PayPro source is still PayPro: its change feed and order are its own.
    let paced = SourceSpec::new(Source::PayPro)
        .with_rate_limit(per(5, secs(3)))
        .build(&key)
        .unwrap();
    assert!(paced.has_change_feed());
    assert_eq!(paced.order(), ListingOrder::NewestFirst);
}

#[test]
fn a_partial_rate_limit_is_completed_from_the_documented_one() {
    assert_eq!(
        RateLimitSpec::overriding(Source::Mkp, None, None),
        Ok(RateLimitSpec::Documented)
    );
    assert_eq!(
        RateLimitSpec::overriding(Source::Mkp, Some(10), None),
        Ok(per(10, secs(60)))
    );
    assert_eq!(
        RateLimitSpec::overriding(Source::Mkp, None, Some(secs(2))),
        Ok(per(60, secs(2)))
    );
    assert_eq!(
        RateLimitSpec::overriding(Source::PayPro, Some(10), Some(secs(2))),
        Ok(per(10, secs(2)))
    );
    let partial = RateLimitSpec::overriding(Source::PayPro, Some(10), None).unwrap_err();
    assert_eq!(
        partial.to_string(),
        "PayPro documents no rate limit to complete the one given; give both the limit and the window"
    );
}

#[test]
fn the_defaults_are_the_providers() {
    let mkp = SourceSpec::new(Source::Mkp);
    assert_eq!(mkp.base_url(), mkp_api::DEFAULT_BASE_URL);
    assert_eq!(mkp.resolved_rate_limit(), Some(mkp_api::RATE_LIMIT));
    assert_eq!(mkp.every, DEFAULT_EVERY);
    let paypro = SourceSpec::new(Source::PayPro);
    assert_eq!(paypro.base_url(), paypro_api::DEFAULT_BASE_URL);
    assert_eq!(paypro.resolved_rate_limit(), None);
}

#[test]
fn a_secret_ref_that_is_not_a_name_is_never_shown() {
    let spec = SourceSpec::new(Source::PayPro).with_webhook_secret("whsec_9f8e7d6c5b4a");
    assert!(!format!("{spec:?}").contains("9f8e7d"));
    let error = spec.validate().unwrap_err();
    assert!(!error.to_string().contains("9f8e7d"));
    let named = SourceSpec::new(Source::PayPro).with_webhook_secret("PAYPRO_WEBHOOK_SECRET");
    assert!(format!("{named:?}").contains("PAYPRO_WEBHOOK_SECRET"));
}
