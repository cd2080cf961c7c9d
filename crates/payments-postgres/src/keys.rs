//! The master key that seals account keys at rest (XChaCha20-Poly1305).

/// The key that seals every account's API keys, from the environment; never printed.
pub struct MasterKey {
    #[allow(dead_code)]
    key: chacha20poly1305::Key,
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
        "the master key is not 32 bytes in base64 (44 characters); make one with `payments accounts master-key`"
    )]
    Malformed,
}
