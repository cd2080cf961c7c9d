//! What both providers' webhook checks share, so that it exists once: the [`WebhookSecret`]
//! (redacted, never printed), [`WebhookError`] (why a webhook is refused, and with which HTTP
//! status), HMAC-SHA256 signing and constant-time verification over the raw bytes, and
//! [`digest_key`], the deduplication key of a body that names no event id.
//!
//! Which headers a provider sends, what it signs and how its body reads stay in its own crate.
//!
//! # Examples
//!
//! ```
//! use payments_http::{WebhookError, WebhookSecret, digest_key};
//!
//! let secret = WebhookSecret::new("whsec_example")?;
//! assert_eq!(format!("{secret:?}"), "WebhookSecret([redacted])");
//! let signature = secret.sign_hex(&[b"1700000000", b".", b"{}"]);
//! assert_eq!(signature.len(), 64);
//! assert!(secret.verify_hex(&[b"1700000000", b".", b"{}"], &signature).is_ok());
//! assert_eq!(
//!     secret.verify_hex(&[b"1700000000", b".", b"{ }"], &signature),
//!     Err(WebhookError::BadSignature)
//! );
//! assert!(digest_key(b"{}").starts_with("sha256:"));
//! # Ok::<(), payments_http::EmptySecret>(())
//! ```

use std::fmt;

use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = hmac::Hmac<Sha256>;

/// A webhook's signing secret. Its `Debug` and `Display` are redacted, it is never part of a
/// message, and it is used only through [`WebhookSecret::sign_hex`],
/// [`WebhookSecret::verify_hex`] and [`WebhookSecret::is`], so it cannot leak by accident.
#[derive(Clone)]
pub struct WebhookSecret(SecretString);

/// A webhook secret was empty (or only whitespace): a webhook signed with it proves nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret must not be empty")]
pub struct EmptySecret;

impl WebhookSecret {
    /// Wraps a secret, as it is (not trimmed); refused when empty or only whitespace.
    pub fn new(secret: impl Into<String>) -> Result<WebhookSecret, EmptySecret> {
        let secret = secret.into();
        if secret.trim().is_empty() {
            return Err(EmptySecret);
        }
        Ok(WebhookSecret(SecretString::from(secret)))
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes a key of any length; the error is for fixed-size MACs only.
        <HmacSha256 as KeyInit>::new_from_slice(self.0.expose_secret().as_bytes())
            .expect("HMAC accepts keys of every length")
    }

    fn mac_over(&self, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.mac();
        for part in parts {
            mac.update(part);
        }
        mac
    }

    /// The lowercase hex HMAC-SHA256, keyed with this secret, over `parts` one after the other
    /// (so `"{timestamp}.{body}"` is signed without copying the body).
    pub fn sign_hex(&self, parts: &[&[u8]]) -> String {
        lower_hex(&self.mac_over(parts).finalize().into_bytes())
    }

    /// Whether `signature` is the hex HMAC-SHA256 (64 digits, either case) of `parts` keyed with
    /// this secret, compared in constant time. Refused as [`WebhookError::BadSignature`] also
    /// when it is not 64 hex digits.
    pub fn verify_hex(&self, parts: &[&[u8]], signature: &str) -> Result<(), WebhookError> {
        let tag = decode_hex(signature.trim()).ok_or(WebhookError::BadSignature)?;
        if tag.len() != 32 {
            return Err(WebhookError::BadSignature);
        }
        self.mac_over(parts)
            .verify_slice(&tag)
            .map_err(|_| WebhookError::BadSignature)
    }

    /// Whether `candidate` is this secret itself, compared in constant time (for a provider that
    /// sends its secret as the signature).
    pub fn is(&self, candidate: &str) -> bool {
        self.0
            .expose_secret()
            .as_bytes()
            .ct_eq(candidate.as_bytes())
            .into()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl fmt::Display for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl TryFrom<String> for WebhookSecret {
    type Error = EmptySecret;

    fn try_from(secret: String) -> Result<WebhookSecret, EmptySecret> {
        WebhookSecret::new(secret)
    }
}

/// Why a webhook was refused. No message holds the body, the secret or the signature: they say
/// what was wrong, and [`WebhookError::http_status`] what to answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// A secret is set but the webhook lacks the header that carries its signature (or its
    /// timestamp).
    #[error("the webhook has no `{header}` header, and a webhook secret is set")]
    Unsigned {
        /// The missing header.
        header: &'static str,
    },
    /// The provider signs every webhook but no secret is configured to check it with, so none
    /// is believed.
    #[error(
        "no webhook secret is configured for {provider}, which signs its webhooks; set one to accept them"
    )]
    NoSecretConfigured {
        /// The provider's name.
        provider: &'static str,
    },
    /// The signature does not match the body (and timestamp) under the secret, or is not hex of
    /// the right length.
    #[error("the webhook's signature does not match its body and the secret")]
    BadSignature,
    /// The signed timestamp is too far from now, in either direction: `age_secs` is now minus
    /// the timestamp (negative: from the future).
    #[error("{}", stale(*.age_secs))]
    StaleTimestamp {
        /// Now minus the timestamp, in seconds.
        age_secs: i64,
    },
    /// The timestamp header is not a whole number of unix seconds.
    #[error("the webhook's timestamp is not a whole number of unix seconds")]
    BadTimestamp,
    /// The body is not JSON.
    #[error("the webhook's body is not JSON ({detail})")]
    NotJson {
        /// Where and how it fails, never its content.
        detail: String,
    },
    /// The body is JSON but not the documented shape: what is missing or wrong, never the value.
    #[error("the webhook's body cannot be read: {detail}")]
    Unreadable {
        /// What is missing or wrong.
        detail: String,
    },
}

fn stale(age_secs: i64) -> String {
    if age_secs >= 0 {
        format!("the webhook's timestamp is {age_secs} s old, too old to be believed")
    } else {
        format!(
            "the webhook's timestamp is {} s ahead of this clock, too far to be believed",
            age_secs.unsigned_abs()
        )
    }
}

impl WebhookError {
    /// The HTTP status to answer: 401 for a missing, wrong or unverifiable signature or
    /// timestamp; 400 for a body that is not JSON *and* for one that is JSON of another shape
    /// (both are "not the event the provider documents"; a provider that retries on 4xx will
    /// not be helped by a finer code).
    pub fn http_status(&self) -> u16 {
        match self {
            WebhookError::Unsigned { .. }
            | WebhookError::NoSecretConfigured { .. }
            | WebhookError::BadSignature
            | WebhookError::StaleTimestamp { .. }
            | WebhookError::BadTimestamp => 401,
            WebhookError::NotJson { .. } | WebhookError::Unreadable { .. } => 400,
        }
    }

    /// A [`WebhookError::NotJson`] for `error`, saying where and what kind of failure it is
    /// (serde_json's syntax messages are free of the body, but a data error's would quote it,
    /// so only the category and position are kept).
    pub fn not_json(error: &serde_json::Error) -> WebhookError {
        let what = match error.classify() {
            serde_json::error::Category::Io => "it could not be read",
            serde_json::error::Category::Syntax => "a syntax error",
            serde_json::error::Category::Data => "an unexpected value",
            serde_json::error::Category::Eof => "it ends early",
        };
        WebhookError::NotJson {
            detail: format!("{what} at line {} column {}", error.line(), error.column()),
        }
    }
}

/// The deduplication key of a webhook whose provider gives no event id: `sha256:` and the
/// lowercase hex SHA-256 of the raw body, so a redelivery has the same key.
///
/// ```
/// assert_eq!(
///     payments_http::digest_key(b""),
///     "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn digest_key(body: &[u8]) -> String {
    format!("sha256:{}", lower_hex(&Sha256::digest(body)))
}

fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// The bytes of hex text (either case, an even number of digits); `None` for anything else.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
    const RFC4231_2: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

    #[test]
    fn signs_as_rfc_4231_says() {
        let secret = WebhookSecret::new("Jefe").unwrap();
        assert_eq!(
            secret.sign_hex(&[b"what do ya want ", b"for nothing?"]),
            RFC4231_2
        );
        assert!(
            secret
                .verify_hex(&[b"what do ya want for nothing?"], RFC4231_2)
                .is_ok()
        );
        assert!(
            secret
                .verify_hex(
                    &[b"what do ya want for nothing?"],
                    &RFC4231_2.to_uppercase()
                )
                .is_ok()
        );
    }

    #[test]
    fn refuses_other_signatures() {
        let secret = WebhookSecret::new("Jefe").unwrap();
        let data: &[&[u8]] = &[b"what do ya want for nothing?"];
        let mut flipped = RFC4231_2.as_bytes().to_vec();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        for signature in [
            String::from_utf8(flipped).unwrap(),
            RFC4231_2[..62].to_owned(),
            format!("{RFC4231_2}00"),
            format!("{}zz", &RFC4231_2[..62]),
            String::new(),
            "not hex at all".to_owned(),
        ] {
            assert_eq!(
                secret.verify_hex(data, &signature),
                Err(WebhookError::BadSignature),
                "{signature}"
            );
        }
        let other = WebhookSecret::new("Jeff").unwrap();
        assert_eq!(
            other.verify_hex(data, RFC4231_2),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn the_secret_is_never_shown() {
        let secret = WebhookSecret::new("whsec_topsecret").unwrap();
        assert_eq!(format!("{secret:?}"), "WebhookSecret([redacted])");
        assert_eq!(secret.to_string(), "[redacted]");
        assert!(secret.is("whsec_topsecret"));
        assert!(!secret.is("whsec_topsecreT"));
        assert!(!secret.is("whsec_topsecret "));
        assert!(!secret.is(""));
    }

    #[test]
    fn an_empty_secret_is_refused() {
        assert_eq!(WebhookSecret::new("").unwrap_err(), EmptySecret);
        assert_eq!(WebhookSecret::new(" \t").unwrap_err(), EmptySecret);
        assert!(WebhookSecret::try_from("x".to_owned()).is_ok());
    }

    #[test]
    fn statuses_and_messages() {
        let cases = [
            (WebhookError::Unsigned { header: "H" }, 401),
            (WebhookError::NoSecretConfigured { provider: "P" }, 401),
            (WebhookError::BadSignature, 401),
            (WebhookError::StaleTimestamp { age_secs: 601 }, 401),
            (WebhookError::StaleTimestamp { age_secs: -601 }, 401),
            (WebhookError::BadTimestamp, 401),
            (WebhookError::NotJson { detail: "d".into() }, 400),
            (WebhookError::Unreadable { detail: "d".into() }, 400),
        ];
        for (error, status) in cases {
            assert_eq!(error.http_status(), status, "{error}");
        }
        assert_eq!(
            WebhookError::StaleTimestamp { age_secs: 601 }.to_string(),
            "the webhook's timestamp is 601 s old, too old to be believed"
        );
        assert!(
            WebhookError::StaleTimestamp { age_secs: -601 }
                .to_string()
                .contains("601 s ahead")
        );
    }

    #[test]
    fn not_json_quotes_no_body() {
        let body = br#"{"secret": "whsec_leak" oops"#;
        let error = serde_json::from_slice::<serde_json::Value>(body).unwrap_err();
        let message = WebhookError::not_json(&error).to_string();
        assert!(message.contains("line 1 column"), "{message}");
        assert!(!message.contains("whsec_leak"), "{message}");
        // A data error's own words would quote the value; ours do not.
        let error = serde_json::from_str::<u8>(r#""whsec_leak""#).unwrap_err();
        assert!(error.to_string().contains("whsec_leak"));
        assert!(
            !WebhookError::not_json(&error)
                .to_string()
                .contains("whsec_leak")
        );
    }

    #[test]
    fn digest_key_is_sha256_hex() {
        assert_eq!(
            digest_key(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(digest_key(b"abc"), digest_key(b"abd"));
    }
}
