//! MKP's webhooks (`payment-link-created`, `payment-link-paid`, `payment-link-expired`),
//! verified and read as hints.
//!
//! MKP documents only that the webhook's secret "is added to the [`SIGNATURE_HEADER`] header";
//! the signing algorithm (if any) and the payload are undocumented. So, with a secret
//! configured, [`verify`] accepts that header when it is the secret itself or the hex
//! HMAC-SHA256 of the raw body keyed with it (either case), compared in constant time, and
//! refuses anything else; without a secret it accepts an unsigned webhook (nothing in it is
//! believed: it only names a payment link to read again). The link is looked for tolerantly
//! at the places such payloads put it.
//!
//! # Examples
//!
//! ```
//! use mkp_api::webhook;
//! use payments_http::WebhookSecret;
//! use payments_model::Hint;
//!
//! let secret = WebhookSecret::new("mkp_whsec_example")?;
//! let body = br#"{"type":"payment-link-paid","data":{"id":"plk_123","status":"paid"}}"#;
//! let signature = webhook::sign(&secret, body);
//! let delivery = webhook::verify(Some(&secret), Some(&signature), body)?;
//! assert_eq!(delivery.kind, "payment-link-paid");
//! assert_eq!(delivery.hints, vec![Hint::Group { id: "plk_123".into() }]);
//! assert!(delivery.key.starts_with("sha256:"));
//! assert!(webhook::verify(Some(&secret), None, body).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use payments_http::{WebhookError, WebhookSecret, digest_key};
use payments_model::{Delivery, Hint};
use serde_json::Value;

/// The header MKP puts the webhook's secret (or a signature made with it) in.
pub const SIGNATURE_HEADER: &str = "X-Webhook-Signature";

/// Where a payment link's id is looked for, in this order (the first one that is a link id
/// wins).
const LINK_PLACES: [&[&str]; 12] = [
    &["id"],
    &["payment_link_id"],
    &["paymentLinkId"],
    &["data", "id"],
    &["data", "payment_link_id"],
    &["data", "paymentLinkId"],
    &["payload", "id"],
    &["payment_link", "id"],
    &["paymentLink", "id"],
    &["data", "payment_link", "id"],
    &["data", "paymentLink", "id"],
    &["object", "id"],
];

/// Where the event's own id is looked for, when it has one distinct from the link's.
const EVENT_ID_PLACES: [&[&str]; 6] = [
    &["event_id"],
    &["eventId"],
    &["webhook_event_id"],
    &["webhookEventId"],
    &["id"],
    &["data", "event_id"],
];

/// Where the event's type is looked for.
const KIND_PLACES: [&str; 3] = ["type", "event", "event_type"];

/// The longest id or event type believed.
const MAX_LEN: usize = 200;

/// The signature this crate accepts best: the lowercase hex HMAC-SHA256 of `body` keyed with
/// `secret` (for tests, and for a sender that signs).
pub fn sign(secret: &WebhookSecret, body: &[u8]) -> String {
    secret.sign_hex(&[body])
}

/// Verifies an MKP webhook and reads which payment link it names.
///
/// `signature` is the value of [`SIGNATURE_HEADER`], `body` the raw body. With a secret, the
/// header must be the secret or the hex HMAC-SHA256 of the body keyed with it (constant time;
/// missing: [`WebhookError::Unsigned`]; anything else: [`WebhookError::BadSignature`]);
/// without one, a webhook is accepted as it comes. The body must be JSON naming a payment link
/// (`plk_` and 1 to 100 letters, digits, `_` or `-`) at one of the usual places (`id`,
/// `payment_link_id`, `paymentLinkId`, `data.id`, `data.payment_link_id`, `data.paymentLinkId`,
/// `payload.id`, `payment_link.id`, `paymentLink.id`, `data.payment_link.id`,
/// `data.paymentLink.id`, `object.id`), else it is [`WebhookError::Unreadable`].
///
/// The [`Delivery`]: `key` the event's own id when it carries one that is not the link's
/// (`event_id`, `webhook_event_id`, or an `id` that is not a link id), else [`digest_key`] of
/// the body; `kind` its `type`, `event` or `event_type` (empty when none); one hint, the link.
pub fn verify(
    secret: Option<&WebhookSecret>,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Delivery, WebhookError> {
    if let Some(secret) = secret {
        let signature = signature.map(str::trim).ok_or(WebhookError::Unsigned {
            header: SIGNATURE_HEADER,
        })?;
        // Both checks run, so the time taken does not say which form was tried.
        let equal = secret.is(signature);
        let signed = secret.verify_hex(&[body], signature).is_ok();
        if !(equal | signed) {
            return Err(WebhookError::BadSignature);
        }
    }
    read(body)
}

fn read(body: &[u8]) -> Result<Delivery, WebhookError> {
    let text = std::str::from_utf8(body).map_err(|e| WebhookError::NotJson {
        detail: format!("bytes that are not UTF-8 at byte {}", e.valid_up_to()),
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| WebhookError::not_json(&e))?;
    if !value.is_object() {
        return Err(WebhookError::Unreadable {
            detail: "it is not a JSON object".to_owned(),
        });
    }
    let link = LINK_PLACES
        .iter()
        .filter_map(|path| string_at(&value, path))
        .find(|id| is_link_id(id))
        .ok_or_else(|| WebhookError::Unreadable {
            detail: "it names no payment link (`plk_…`) at any of the usual places (`id`, `payment_link_id`, `data.id`, `data.payment_link.id`, `object.id`, …)".to_owned(),
        })?
        .to_owned();
    let key = EVENT_ID_PLACES
        .iter()
        .filter_map(|path| string_at(&value, path))
        .find(|id| *id != link && !is_link_id(id) && is_token(id))
        .map_or_else(|| digest_key(body), str::to_owned);
    let kind = KIND_PLACES
        .iter()
        .filter_map(|field| string_at(&value, &[field]))
        .find(|kind| is_word(kind))
        .unwrap_or_default()
        .to_owned();
    Ok(Delivery {
        key,
        kind,
        hints: vec![Hint::Group { id: link }],
    })
}

fn string_at<'v>(value: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter()
        .try_fold(value, |value, field| value.get(field))?
        .as_str()
}

/// `plk_` and 1 to 100 letters, digits, `_` or `-`.
fn is_link_id(id: &str) -> bool {
    id.strip_prefix("plk_").is_some_and(|rest| {
        (1..=100).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// An event id to deduplicate by: letters, digits, `_` and `-`, at most [`MAX_LEN`].
fn is_token(id: &str) -> bool {
    id.len() <= MAX_LEN && payments_http::path_segment(id).is_ok()
}

/// An event type a log line can carry: printable, not blank, not absurdly long.
fn is_word(text: &str) -> bool {
    !text.trim().is_empty() && text.len() <= MAX_LEN && !text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "mkp_whsec_test_secret";

    fn secret() -> WebhookSecret {
        WebhookSecret::new(SECRET).unwrap()
    }

    const PAID: &[u8] = br#"{"type":"payment-link-paid","data":{"id":"plk_000001a1b2c3d4","status":"paid","amount":"12.95"}}"#;

    fn group(id: &str) -> Vec<Hint> {
        vec![Hint::Group { id: id.into() }]
    }

    #[test]
    fn the_secret_itself_or_its_hmac_is_accepted() {
        let hmac = sign(&secret(), PAID);
        // Computed independently: printf '%s' "$PAID" | openssl dgst -sha256 -hmac mkp_whsec_test_secret
        assert_eq!(
            hmac,
            "4945dd1319dcf9493ec4636fff5080228934ab6ab9cffc5c11152ab20e93d374"
        );
        for signature in [SECRET.to_owned(), hmac.clone(), hmac.to_uppercase()] {
            let delivery = verify(Some(&secret()), Some(&signature), PAID).unwrap();
            assert_eq!(delivery.hints, group("plk_000001a1b2c3d4"));
            assert_eq!(delivery.kind, "payment-link-paid");
            assert_eq!(delivery.key, digest_key(PAID));
        }
    }

    #[test]
    fn anything_else_is_refused_when_a_secret_is_set() {
        let hmac = sign(&secret(), PAID);
        let mut flipped = PAID.to_vec();
        flipped[20] ^= 1;
        assert_eq!(
            verify(Some(&secret()), Some(&hmac), &flipped),
            Err(WebhookError::BadSignature)
        );
        let mut bad = hmac.clone().into_bytes();
        bad[0] = if bad[0] == b'0' { b'1' } else { b'0' };
        for signature in [
            String::from_utf8(bad).unwrap(),
            format!("{SECRET}x"),
            SECRET[1..].to_owned(),
            SECRET.to_uppercase(),
            "sha256=".to_owned() + &hmac,
            String::new(),
            "zz".to_owned(),
        ] {
            assert_eq!(
                verify(Some(&secret()), Some(&signature), PAID),
                Err(WebhookError::BadSignature),
                "{signature}"
            );
        }
        assert_eq!(
            verify(Some(&secret()), None, PAID),
            Err(WebhookError::Unsigned {
                header: SIGNATURE_HEADER
            })
        );
    }

    #[test]
    fn without_a_secret_unsigned_is_accepted() {
        assert_eq!(
            verify(None, None, PAID).unwrap().hints,
            group("plk_000001a1b2c3d4")
        );
        assert!(verify(None, Some("anything"), PAID).is_ok());
    }

    #[test]
    fn the_link_is_found_at_each_usual_place() {
        let bodies = [
            r#"{"id":"plk_a"}"#,
            r#"{"payment_link_id":"plk_a"}"#,
            r#"{"paymentLinkId":"plk_a"}"#,
            r#"{"data":{"id":"plk_a"}}"#,
            r#"{"data":{"payment_link_id":"plk_a"}}"#,
            r#"{"data":{"paymentLinkId":"plk_a"}}"#,
            r#"{"payload":{"id":"plk_a"}}"#,
            r#"{"payment_link":{"id":"plk_a"}}"#,
            r#"{"paymentLink":{"id":"plk_a"}}"#,
            r#"{"data":{"payment_link":{"id":"plk_a"}}}"#,
            r#"{"data":{"paymentLink":{"id":"plk_a"}}}"#,
            r#"{"object":{"id":"plk_a"}}"#,
            // An id that is not a link's is passed over for one that is.
            r#"{"id":"wbh_1","data":{"id":"plp_1","payment_link_id":"plk_a"}}"#,
        ];
        for body in bodies {
            assert_eq!(
                verify(None, None, body.as_bytes()).unwrap().hints,
                group("plk_a"),
                "{body}"
            );
        }
    }

    #[test]
    fn the_key_is_the_events_own_id_when_it_has_one() {
        let body = br#"{"id":"evt_1","event":"payment-link-expired","data":{"id":"plk_a"}}"#;
        let delivery = verify(None, None, body).unwrap();
        assert_eq!(delivery.key, "evt_1");
        assert_eq!(delivery.kind, "payment-link-expired");
        let body =
            br#"{"webhook_event_id":"wbh_9","event_type":"payment-link-created","id":"plk_a"}"#;
        let delivery = verify(None, None, body).unwrap();
        assert_eq!(delivery.key, "wbh_9");
        assert_eq!(delivery.kind, "payment-link-created");
        let body = br#"{"id":"plk_a"}"#;
        let delivery = verify(None, None, body).unwrap();
        assert_eq!(delivery.key, digest_key(body));
        assert_eq!(delivery.kind, "");
    }

    #[test]
    fn bodies_without_a_link_or_not_json() {
        for body in [&b"plk_a"[..], b"{", b"", b"\xff"] {
            assert!(
                matches!(verify(None, None, body), Err(WebhookError::NotJson { .. })),
                "{body:?}"
            );
        }
        let long = format!(r#"{{"id":"plk_{}"}}"#, "a".repeat(101));
        for body in [
            "[]",
            r#""plk_a""#,
            "{}",
            r#"{"id":"plk_"}"#,
            r#"{"id":"plk_a/../b"}"#,
            r#"{"id":"plk_a\u0000"}"#,
            r#"{"id":17}"#,
            r#"{"data":{"id":"plp_1"}}"#,
            r#"{"deep":{"data":{"id":"plk_a"}}}"#,
            &long,
        ] {
            assert!(
                matches!(
                    verify(None, None, body.as_bytes()),
                    Err(WebhookError::Unreadable { .. })
                ),
                "{body}"
            );
        }
        let hundred = format!(r#"{{"id":"plk_{}"}}"#, "a".repeat(100));
        assert!(verify(None, None, hundred.as_bytes()).is_ok());
    }

    #[test]
    fn no_message_holds_the_secret_the_body_or_the_signature() {
        let marker = "mkp_body_marker";
        let body = format!(r#"{{"id":"{marker}"}}"#);
        let hmac = sign(&secret(), body.as_bytes());
        let errors = [
            verify(Some(&secret()), Some(&hmac), body.as_bytes()).unwrap_err(),
            verify(Some(&secret()), Some("nope"), body.as_bytes()).unwrap_err(),
            verify(Some(&secret()), None, body.as_bytes()).unwrap_err(),
            verify(None, None, format!("{body}{marker}").as_bytes()).unwrap_err(),
        ];
        for error in errors {
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(!shown.contains(SECRET), "{shown}");
                assert!(!shown.contains(marker), "{shown}");
                assert!(!shown.contains(&hmac), "{shown}");
            }
        }
        assert_eq!(format!("{:?}", secret()), "WebhookSecret([redacted])");
    }
}
