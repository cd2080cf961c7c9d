//! The master key that seals account keys at rest: XChaCha20-Poly1305, a random 24-byte nonce
//! per key, and the account and source as associated data, so that a sealed key moved to
//! another row no longer opens.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};

/// The environment variable the master key is read from.
pub const MASTER_KEY_VARIABLE: &str = "PAYMENTS_MASTER_KEY";

/// The environment variable of the previous master key, during a rotation.
pub const PREVIOUS_MASTER_KEY_VARIABLE: &str = "PAYMENTS_MASTER_KEY_PREVIOUS";

const NONCE_LEN: usize = 24;

/// The key that seals every account's API keys, from the environment; never printed.
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    /// The key as given, for `to_base64` (a new key is shown once, to be kept).
    key: [u8; 32],
    /// During a rotation, the key before this one: what it sealed still opens (nothing is
    /// sealed with it).
    previous: Option<Box<MasterKey>>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(redacted)")
    }
}

/// Why a key could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The master key is not 32 bytes in base64.
    #[error(
        "{MASTER_KEY_VARIABLE} is not a master key (32 bytes in base64, 44 characters); make one with `payments accounts master-key`"
    )]
    Malformed,
    /// The master key is not the one the database's keys were sealed with.
    #[error(
        "{MASTER_KEY_VARIABLE} is not the master key this database's account keys were sealed with; set it to that key (without it, every account's keys must be added again)"
    )]
    WrongMasterKey,
    /// A sealed key is damaged, or was moved to another account or source.
    #[error(
        "the sealed API key of {what} does not open: it is damaged or belongs to another account; add the account's key again"
    )]
    Damaged {
        /// The account and source.
        what: String,
    },
}

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> MasterKey {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        MasterKey::from_bytes(key.into())
    }

    fn from_bytes(key: [u8; 32]) -> MasterKey {
        MasterKey {
            cipher: XChaCha20Poly1305::new(&key.into()),
            key,
            previous: None,
        }
    }

    /// This key, opening also what `previous` sealed (the switch of a rotation: workers run
    /// with both until `payments accounts rotate-master-key` has sealed everything anew).
    pub fn with_previous(mut self, previous: MasterKey) -> MasterKey {
        self.previous = Some(Box::new(previous.without_previous()));
        self
    }

    /// Whether a previous key is given ([`MasterKey::with_previous`]).
    pub fn has_previous(&self) -> bool {
        self.previous.is_some()
    }

    fn without_previous(mut self) -> MasterKey {
        self.previous = None;
        self
    }

    /// The master key written as [`MasterKey::to_base64`] writes it.
    pub fn from_base64(text: &str) -> Result<MasterKey, KeyError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::Malformed)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed)?;
        Ok(MasterKey::from_bytes(key))
    }

    /// The key in base64, to be kept in [`MASTER_KEY_VARIABLE`].
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.key)
    }

    /// `secret` sealed, bound to `context` (nonce, then ciphertext with its tag).
    pub(crate) fn seal(&self, secret: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut sealed = nonce.to_vec();
        // Encryption with a valid key and nonce only fails past 256 GiB of plaintext.
        if let Ok(ciphertext) = self.cipher.encrypt(
            &nonce,
            Payload {
                msg: secret,
                aad: context,
            },
        ) {
            sealed.extend(ciphertext);
        }
        sealed
    }

    /// What [`MasterKey::seal`] sealed with `context`, or `None` when it does not open (another
    /// master key, another context, damaged).
    pub(crate) fn open(&self, sealed: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .ok()
            .or_else(|| self.previous.as_ref()?.open(sealed, context))
    }

    /// An API key sealed for one source of one account.
    pub(crate) fn seal_api_key(&self, key: &SecretString, account: &str, source: &str) -> Vec<u8> {
        self.seal(
            key.expose_secret().as_bytes(),
            &key_context(account, source),
        )
    }

    /// The API key of one source of one account.
    pub(crate) fn open_api_key(
        &self,
        sealed: &[u8],
        account: &str,
        source: &str,
    ) -> Result<SecretString, KeyError> {
        let damaged = || KeyError::Damaged {
            what: format!("{account}/{source}"),
        };
        let bytes = self
            .open(sealed, &key_context(account, source))
            .ok_or_else(damaged)?;
        String::from_utf8(bytes)
            .map(SecretString::from)
            .map_err(|_| damaged())
    }
}

impl MasterKey {
    /// A keyed fingerprint of one source's API key (HMAC-SHA256 under this master key, hex):
    /// equal for equal keys of a source, and no help to anyone without the master key.
    pub(crate) fn key_fingerprint(&self, source: &str, key: &SecretString) -> String {
        use hmac::{KeyInit as _, Mac};
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(b"payments api key fingerprint\0");
        mac.update(source.as_bytes());
        mac.update(b"\0");
        mac.update(key.expose_secret().as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A provider's webhook secret sealed for one source of one account (its own context: a
    /// sealed API key moved into the secret's column does not open, nor the other way round).
    pub(crate) fn seal_webhook_secret(
        &self,
        secret: &SecretString,
        account: &str,
        source: &str,
    ) -> Vec<u8> {
        self.seal(
            secret.expose_secret().as_bytes(),
            &secret_context(account, source),
        )
    }

    /// The webhook secret of one source of one account.
    pub(crate) fn open_webhook_secret(
        &self,
        sealed: &[u8],
        account: &str,
        source: &str,
    ) -> Result<SecretString, KeyError> {
        let damaged = || KeyError::Damaged {
            what: format!("{account}/{source} (its webhook secret)"),
        };
        let bytes = self
            .open(sealed, &secret_context(account, source))
            .ok_or_else(damaged)?;
        String::from_utf8(bytes)
            .map(SecretString::from)
            .map_err(|_| damaged())
    }
}

/// The associated data that binds a sealed webhook secret to its account and source.
fn secret_context(account: &str, source: &str) -> Vec<u8> {
    format!("payments-ledger webhook secret v1\0{account}\0{source}").into_bytes()
}

/// The associated data that binds a sealed API key to its account and source.
fn key_context(account: &str, source: &str) -> Vec<u8> {
    format!("payments-ledger account key v1\0{account}\0{source}").into_bytes()
}

/// The text sealed as `master_key_check` in `ledger.meta`.
pub(crate) const CHECK_TEXT: &[u8] = b"payments-ledger master key check v1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_with_its_master_key_account_and_source() {
        let master = MasterKey::generate();
        let key = SecretString::from("pk_live_recognisable");
        let sealed = master.seal_api_key(&key, "acme", "listing");
        assert!(
            !String::from_utf8_lossy(&sealed).contains("recognisable"),
            "the key is not in clear"
        );
        let opened = master.open_api_key(&sealed, "acme", "listing").unwrap();
        assert_eq!(opened.expose_secret(), "pk_live_recognisable");
        assert!(master.open_api_key(&sealed, "other", "listing").is_err());
        assert!(master.open_api_key(&sealed, "acme", "feed").is_err());
        let again = MasterKey::from_base64(&master.to_base64()).unwrap();
        assert!(again.open_api_key(&sealed, "acme", "listing").is_ok());
        assert!(
            MasterKey::generate()
                .open_api_key(&sealed, "acme", "listing")
                .is_err()
        );
        assert!(matches!(
            MasterKey::from_base64("not a key"),
            Err(KeyError::Malformed)
        ));
        assert_eq!(format!("{master:?}"), "MasterKey(redacted)");
    }

    #[test]
    fn a_sealed_webhook_secret_opens_only_as_a_webhook_secret_of_its_account_and_source() {
        let master = MasterKey::generate();
        let secret = SecretString::from("whsec_recognisable");
        let sealed = master.seal_webhook_secret(&secret, "acme", "listing");
        assert!(!String::from_utf8_lossy(&sealed).contains("recognisable"));
        let opened = master
            .open_webhook_secret(&sealed, "acme", "listing")
            .unwrap();
        assert_eq!(opened.expose_secret(), "whsec_recognisable");
        assert!(master.open_webhook_secret(&sealed, "acme", "feed").is_err());
        assert!(master.open_api_key(&sealed, "acme", "listing").is_err());
    }
}
