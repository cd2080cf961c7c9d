//! PayPro's webhooks, verified and read as hints.
//!
//! PayPro POSTs an event object, the same shape as on `/events`, with the headers
//! [`TIMESTAMP_HEADER`] (unix seconds) and [`SIGNATURE_HEADER`] (lowercase hex HMAC-SHA256,
//! keyed with the webhook's own secret, over `"{timestamp}.{raw body}"`). [`verify`] refuses a
//! webhook without a configured secret, unsigned, wrongly signed or more than
//! [`MAX_SKEW_SECS`] from now (either way), and reads what it names: nothing of its payload is
//! believed, only which payment to read again.
//!
//! # Examples
//!
//! ```
//! use payments_model::{Hint, chrono::{TimeZone, Utc}};
//! use paypro_api::webhook;
//! use payments_http::WebhookSecret;
//!
//! let secret = WebhookSecret::new("whsec_example")?;
//! let body = br#"{"id":"EV1","type":"event","event_type":"payment.paid",
//!     "payload":{"id":"PP1","type":"payment"},"created_at":"2024-08-20T08:00:00Z"}"#;
//! let now = Utc.timestamp_opt(1_724_140_800, 0).unwrap();
//! let signature = webhook::sign(&secret, now.timestamp(), body);
//! let delivery = webhook::verify(Some(&secret), Some("1724140800"), Some(&signature), body, now)?;
//! assert_eq!(delivery.key, "EV1");
//! assert_eq!(delivery.kind, "payment.paid");
//! assert_eq!(delivery.hints, vec![Hint::Payment { id: "PP1".into() }]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use payments_http::{WebhookError, WebhookSecret, digest_key};
use payments_model::chrono::{DateTime, Utc};
use payments_model::{Delivery, Hint};
use serde_json::Value;

use crate::feed::{PayloadKind, payload_kind};

/// The header with the unix seconds the webhook was signed at.
pub const TIMESTAMP_HEADER: &str = "PayPro-Timestamp";

/// The header with the signature: lowercase hex HMAC-SHA256 over `"{timestamp}.{raw body}"`.
pub const SIGNATURE_HEADER: &str = "PayPro-Signature";

/// How far (in seconds, either way) the signed timestamp may be from now, as PayPro's PHP
/// client allows: 600 is accepted, 601 refused.
pub const MAX_SKEW_SECS: i64 = 600;

/// The longest id believed (an event's, a payment's).
const MAX_ID_LEN: usize = 200;

/// The longest event type believed.
const MAX_KIND_LEN: usize = 200;

const PROVIDER: &str = "PayPro";

/// The signature PayPro sends for `body` signed at `timestamp` (unix seconds) with `secret`:
/// lowercase hex HMAC-SHA256 over `"{timestamp}.{body}"`.
pub fn sign(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    secret.sign_hex(&[timestamp.to_string().as_bytes(), b".", body])
}

/// Verifies a PayPro webhook and reads what it names to read again.
///
/// `timestamp` and `signature` are the values of [`TIMESTAMP_HEADER`] and
/// [`SIGNATURE_HEADER`], `body` the raw body. Refused, in this order: no secret configured
/// ([`WebhookError::NoSecretConfigured`]: PayPro signs every webhook, so none is believed
/// without one), a missing header ([`WebhookError::Unsigned`]), a timestamp that is not whole
/// unix seconds, a signature that is not the 64 hex digits (either case) of the HMAC, compared
/// in constant time, a timestamp more than [`MAX_SKEW_SECS`] from `now` in either direction, a
/// body that is not JSON, and one that is not an event naming what it concerns
/// ([`WebhookError::Unreadable`]).
///
/// The [`Delivery`]: `key` is the event id (`EV…`; [`digest_key`] of the body when it has
/// none), `kind` its `event_type`; a payment event names the payment, a refund event the
/// refunded payment, a chargeback event the charged-back payment *and* the change feed (the
/// payment's own record does not show a chargeback); a refund or chargeback event that names
/// no payment (`payment` missing or null) names the change feed alone, and so does a payout
/// event (`payout.*`: a payout moves the balance, and is read from the source's listings by a
/// run); any other event (a customer) names nothing. What an event is follows the rule the
/// feed's reading uses (the payload's own `type`, else the event type's prefix).
pub fn verify(
    secret: Option<&WebhookSecret>,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Delivery, WebhookError> {
    let secret = secret.ok_or(WebhookError::NoSecretConfigured { provider: PROVIDER })?;
    let timestamp = timestamp.ok_or(WebhookError::Unsigned {
        header: TIMESTAMP_HEADER,
    })?;
    let signature = signature.ok_or(WebhookError::Unsigned {
        header: SIGNATURE_HEADER,
    })?;
    let at = unix_seconds(timestamp)?;
    secret.verify_hex(&[timestamp.as_bytes(), b".", body], signature)?;
    let age_secs = now.timestamp().saturating_sub(at);
    if age_secs.unsigned_abs() > MAX_SKEW_SECS.unsigned_abs() {
        return Err(WebhookError::StaleTimestamp { age_secs });
    }
    read(body)
}

/// Whole unix seconds: ASCII digits only (no sign, no space, no fraction), at most 18.
fn unix_seconds(text: &str) -> Result<i64, WebhookError> {
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WebhookError::BadTimestamp);
    }
    text.parse().map_err(|_| WebhookError::BadTimestamp)
}

/// Reads a verified body: the event's key, kind and hints.
fn read(body: &[u8]) -> Result<Delivery, WebhookError> {
    let text = std::str::from_utf8(body).map_err(|e| WebhookError::NotJson {
        detail: format!("bytes that are not UTF-8 at byte {}", e.valid_up_to()),
    })?;
    let event: Value = serde_json::from_str(text).map_err(|e| WebhookError::not_json(&e))?;
    let unreadable = |detail: String| WebhookError::Unreadable { detail };
    let Value::Object(event) = &event else {
        return Err(unreadable("it is not a JSON object".to_owned()));
    };
    let key = match event.get("id") {
        None | Some(Value::Null) => digest_key(body),
        Some(id) => token(id, "id")?.to_owned(),
    };
    let kind = match event.get("event_type") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(kind)) if is_plain_word(kind) => kind.clone(),
        Some(_) => {
            return Err(unreadable(format!(
                "`event_type` is not a string of at most {MAX_KIND_LEN} printable characters"
            )));
        }
    };
    let payload = event.get("payload");
    let payload_field = |field: &str| -> Result<String, WebhookError> {
        let value = payload
            .and_then(|payload| payload.get(field))
            .ok_or_else(|| unreadable(format!("`payload.{field}` is missing")))?;
        token(value, &format!("payload.{field}")).map(str::to_owned)
    };
    // The payment a refund or chargeback names, when it names one (a missing or null one is
    // none: the change is then read from the feed).
    let named_payment = || -> Result<Option<String>, WebhookError> {
        match payload.and_then(|payload| payload.get("payment")) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => token(value, "payload.payment").map(|id| Some(id.to_owned())),
        }
    };
    let hints = match payload_kind(text) {
        PayloadKind::Payment => vec![Hint::Payment {
            id: payload_field("id")?,
        }],
        PayloadKind::Refund => match named_payment()? {
            Some(id) => vec![Hint::Payment { id }],
            None => vec![Hint::Feed],
        },
        PayloadKind::Chargeback => match named_payment()? {
            Some(id) => vec![Hint::Payment { id }, Hint::Feed],
            None => vec![Hint::Feed],
        },
        PayloadKind::Payout => vec![Hint::Feed],
        PayloadKind::Other => Vec::new(),
    };
    Ok(Delivery { key, kind, hints })
}

/// An id as a plain token: a string of letters, digits, `_` and `-`, at most [`MAX_ID_LEN`]
/// long. The message names the field, never the value.
fn token<'v>(value: &'v Value, field: &str) -> Result<&'v str, WebhookError> {
    match value {
        Value::String(id) if id.len() <= MAX_ID_LEN && payments_http::path_segment(id).is_ok() => {
            Ok(id)
        }
        Value::String(_) => Err(WebhookError::Unreadable {
            detail: format!(
                "`{field}` is not an id: it is empty, longer than {MAX_ID_LEN} characters, or holds characters other than letters, digits, `_` and `-`"
            ),
        }),
        _ => Err(WebhookError::Unreadable {
            detail: format!("`{field}` is not a string"),
        }),
    }
}

/// An event type a log line can carry as it is: printable, not blank, not absurdly long.
fn is_plain_word(text: &str) -> bool {
    !text.trim().is_empty() && text.len() <= MAX_KIND_LEN && !text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use payments_model::chrono::TimeZone;

    const SECRET: &str = "whsec_paypro_test_secret";
    const NOW: i64 = 1_724_140_800;

    fn secret() -> WebhookSecret {
        WebhookSecret::new(SECRET).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(NOW, 0).unwrap()
    }

    fn event(event_type: &str, payload: &str) -> Vec<u8> {
        format!(
            r#"{{"id":"EV0000000001","type":"event","event_type":"{event_type}","payload":{payload},"created_at":"2024-08-20T08:00:00Z","_links":{{"self":"https://api.paypro.nl/events/EV0000000001"}}}}"#
        )
        .into_bytes()
    }

    fn paid() -> Vec<u8> {
        event(
            "payment.paid",
            r#"{"id":"PP0000000001","type":"payment","amount":1000,"currency":"EUR","state":"paid"}"#,
        )
    }

    /// Verifies `body` signed at `signed_at`, as PayPro would send it, at [`NOW`].
    fn deliver(body: &[u8], signed_at: i64) -> Result<Delivery, WebhookError> {
        let signature = sign(&secret(), signed_at, body);
        verify(
            Some(&secret()),
            Some(&signed_at.to_string()),
            Some(&signature),
            body,
            now(),
        )
    }

    #[test]
    fn a_signed_payment_event_names_its_payment() {
        let delivery = deliver(&paid(), NOW).unwrap();
        assert_eq!(
            delivery,
            Delivery {
                key: "EV0000000001".into(),
                kind: "payment.paid".into(),
                hints: vec![Hint::Payment {
                    id: "PP0000000001".into()
                }],
            }
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Computed independently: printf '1724140800.{}' | openssl dgst -sha256 -hmac whsec_paypro_test_secret
        assert_eq!(
            sign(&secret(), NOW, b"{}"),
            "4bc2e480f029c8942f53250d0d6d5b5c4b728af5c364060ad44143e66af31dcb"
        );
    }

    #[test]
    fn one_flipped_bit_anywhere_is_refused() {
        let body = paid();
        let signature = sign(&secret(), NOW, &body);
        let timestamp = NOW.to_string();
        for bit in [0, 7, 300] {
            let mut flipped = body.clone();
            let at = bit % flipped.len();
            flipped[at] ^= 1;
            assert_eq!(
                verify(
                    Some(&secret()),
                    Some(&timestamp),
                    Some(&signature),
                    &flipped,
                    now()
                ),
                Err(WebhookError::BadSignature),
                "body bit {bit}"
            );
        }
        let earlier = (NOW - 1).to_string();
        assert_eq!(
            verify(
                Some(&secret()),
                Some(&earlier),
                Some(&signature),
                &body,
                now()
            ),
            Err(WebhookError::BadSignature)
        );
        let mut bad = signature.clone().into_bytes();
        bad[63] = if bad[63] == b'0' { b'1' } else { b'0' };
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(
            verify(Some(&secret()), Some(&timestamp), Some(&bad), &body, now()),
            Err(WebhookError::BadSignature)
        );
        let other = WebhookSecret::new("whsec_other").unwrap();
        assert_eq!(
            verify(
                Some(&other),
                Some(&timestamp),
                Some(&signature),
                &body,
                now()
            ),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn the_signature_must_be_64_hex_digits() {
        let body = paid();
        let signature = sign(&secret(), NOW, &body);
        let timestamp = NOW.to_string();
        let upper = signature.to_uppercase();
        assert!(
            verify(
                Some(&secret()),
                Some(&timestamp),
                Some(&upper),
                &body,
                now()
            )
            .is_ok()
        );
        for bad in [
            format!("{}g", &signature[..63]),
            signature[..62].to_owned(),
            format!("{signature}ab"),
            format!("sha256={signature}"),
            String::new(),
        ] {
            assert_eq!(
                verify(Some(&secret()), Some(&timestamp), Some(&bad), &body, now()),
                Err(WebhookError::BadSignature),
                "{bad}"
            );
        }
    }

    #[test]
    fn six_hundred_seconds_either_way_and_no_more() {
        assert!(deliver(&paid(), NOW - 600).is_ok());
        assert!(deliver(&paid(), NOW + 600).is_ok());
        assert_eq!(
            deliver(&paid(), NOW - 601),
            Err(WebhookError::StaleTimestamp { age_secs: 601 })
        );
        assert_eq!(
            deliver(&paid(), NOW + 601),
            Err(WebhookError::StaleTimestamp { age_secs: -601 })
        );
        assert_eq!(
            deliver(&paid(), 0),
            Err(WebhookError::StaleTimestamp { age_secs: NOW })
        );
    }

    #[test]
    fn a_timestamp_is_whole_unix_seconds() {
        let body = paid();
        for timestamp in [
            "",
            "1724140800.5",
            "-1724140800",
            " 1724140800",
            "1e9",
            "now",
        ] {
            let signature = secret().sign_hex(&[timestamp.as_bytes(), b".", &body]);
            assert_eq!(
                verify(
                    Some(&secret()),
                    Some(timestamp),
                    Some(&signature),
                    &body,
                    now()
                ),
                Err(WebhookError::BadTimestamp),
                "{timestamp:?}"
            );
        }
    }

    #[test]
    fn missing_headers_and_no_secret() {
        let body = paid();
        let signature = sign(&secret(), NOW, &body);
        let timestamp = NOW.to_string();
        assert_eq!(
            verify(None, Some(&timestamp), Some(&signature), &body, now()),
            Err(WebhookError::NoSecretConfigured { provider: "PayPro" })
        );
        assert_eq!(
            verify(None, None, None, &body, now()),
            Err(WebhookError::NoSecretConfigured { provider: "PayPro" })
        );
        assert_eq!(
            verify(Some(&secret()), None, Some(&signature), &body, now()),
            Err(WebhookError::Unsigned {
                header: TIMESTAMP_HEADER
            })
        );
        assert_eq!(
            verify(Some(&secret()), Some(&timestamp), None, &body, now()),
            Err(WebhookError::Unsigned {
                header: SIGNATURE_HEADER
            })
        );
    }

    #[test]
    fn refunds_chargebacks_and_others() {
        let refund = event(
            "refund.created",
            r#"{"id":"PR1","type":"refund","amount":500,"currency":"EUR","payment":"PP7"}"#,
        );
        assert_eq!(
            deliver(&refund, NOW).unwrap().hints,
            vec![Hint::Payment { id: "PP7".into() }]
        );
        let chargeback = event(
            "chargeback.created",
            r#"{"id":"PC1","type":"chargeback","amount":500,"currency":"EUR","payment":"PP8","state":"completed"}"#,
        );
        assert_eq!(
            deliver(&chargeback, NOW).unwrap().hints,
            vec![Hint::Payment { id: "PP8".into() }, Hint::Feed]
        );
        // The payload's own type decides, as when the feed is read; else the event type's prefix.
        let untyped = event("refund.created", r#"{"id":"PR1","payment":"PP9"}"#);
        assert_eq!(
            deliver(&untyped, NOW).unwrap().hints,
            vec![Hint::Payment { id: "PP9".into() }]
        );
        // A refund or chargeback that names no payment wakes a run, to read it from the feed.
        for unnamed in [
            event("refund.created", r#"{"id":"PR1","type":"refund"}"#),
            event(
                "refund.created",
                r#"{"id":"PR1","type":"refund","payment":null}"#,
            ),
            event("chargeback.created", r#"{"id":"PC1","type":"chargeback"}"#),
            event("chargeback.created", "null"),
        ] {
            assert_eq!(deliver(&unnamed, NOW).unwrap().hints, vec![Hint::Feed]);
        }
        // So does a payout, whatever its payload: it moves the balance.
        for payout in [
            event(
                "payout.paid",
                r#"{"id":"PO1","type":"payout","amount":100}"#,
            ),
            event("payout.created", "null"),
            event("payout.failed", r#"{"id":"PO1"}"#),
            event("whatever.new", r#"{"id":"PO1","type":"payout"}"#),
        ] {
            let delivery = deliver(&payout, NOW).unwrap();
            assert_eq!(delivery.hints, vec![Hint::Feed], "{delivery:?}");
        }
        for other in [
            event("customer.created", r#"{"id":"CU1","type":"customer"}"#),
            event("something.new", r#"{"id":"XX1"}"#),
            event("payment.paid", r#"{"id":"CU1","type":"customer"}"#),
        ] {
            let delivery = deliver(&other, NOW).unwrap();
            assert!(delivery.hints.is_empty(), "{delivery:?}");
            assert_eq!(delivery.key, "EV0000000001");
        }
    }

    #[test]
    fn an_event_without_id_is_known_by_its_digest() {
        let body = br#"{"event_type":"payment.paid","payload":{"id":"PP1","type":"payment"}}"#;
        let delivery = deliver(body, NOW).unwrap();
        assert_eq!(delivery.key, digest_key(body));
        assert!(delivery.key.starts_with("sha256:"));
    }

    #[test]
    fn bodies_that_are_not_json_or_not_an_event() {
        for body in [&b"not json"[..], b"{\"id\":", b"", b"\xff\xfe"] {
            assert!(
                matches!(deliver(body, NOW), Err(WebhookError::NotJson { .. })),
                "{body:?}"
            );
        }
        let long = "P".repeat(201);
        for body in [
            "[]".to_owned(),
            r#""event""#.to_owned(),
            r#"{"id":"EV1","event_type":"payment.paid","payload":{"type":"payment"}}"#.to_owned(),
            r#"{"id":"EV1","event_type":"payment.paid","payload":{"id":"PP1/../x","type":"payment"}}"#.to_owned(),
            r#"{"id":"EV1","event_type":"payment.paid","payload":{"id":"PP\u0007","type":"payment"}}"#.to_owned(),
            format!(r#"{{"id":"EV1","event_type":"payment.paid","payload":{{"id":"{long}","type":"payment"}}}}"#),
            r#"{"id":"EV1","event_type":"payment.paid","payload":{"id":17,"type":"payment"}}"#.to_owned(),
            r#"{"id":"EV/1","event_type":"payout.paid","payload":{}}"#.to_owned(),
            r#"{"id":"EV1","event_type":"payment.paid\n","payload":{"id":"PP1"}}"#.to_owned(),
            r#"{"id":"EV1","event_type":"refund.created","payload":{"id":"PR1","type":"refund","payment":"PP1/../x"}}"#.to_owned(),
            r#"{"id":"EV1","event_type":"chargeback.created","payload":{"id":"PC1","type":"chargeback","payment":7}}"#.to_owned(),
            r#"{"id":"EV1","event_type":"payment.paid"}"#.to_owned(),
        ] {
            assert!(
                matches!(deliver(body.as_bytes(), NOW), Err(WebhookError::Unreadable { .. })),
                "{body}: {:?}",
                deliver(body.as_bytes(), NOW)
            );
        }
    }

    #[test]
    fn no_message_holds_the_secret_the_body_or_the_signature() {
        let marker = "whsec_body_marker";
        let body = format!(
            r#"{{"id":"EV1","event_type":"payment.paid","payload":{{"id":"{marker}/x","type":"payment"}}}}"#
        );
        let signature = sign(&secret(), NOW, body.as_bytes());
        let timestamp = NOW.to_string();
        let errors = [
            deliver(body.as_bytes(), NOW).unwrap_err(),
            deliver(body.as_bytes(), NOW - 601).unwrap_err(),
            deliver(format!("{body} {marker}").as_bytes(), NOW).unwrap_err(),
            verify(
                Some(&secret()),
                Some(&timestamp),
                Some("00"),
                body.as_bytes(),
                now(),
            )
            .unwrap_err(),
            verify(
                None,
                Some(&timestamp),
                Some(&signature),
                body.as_bytes(),
                now(),
            )
            .unwrap_err(),
        ];
        for error in errors {
            for shown in [error.to_string(), format!("{error:?}")] {
                assert!(!shown.contains(SECRET), "{shown}");
                assert!(!shown.contains(marker), "{shown}");
                assert!(!shown.contains(&signature), "{shown}");
            }
        }
    }
}
