//! The crates `payments-model` must never depend on, shared by `cargo xtask check-model-purity`
//! and the tidy test that checks the same invariant.

/// Crates that mean I/O or an async runtime; none may appear under `payments-model`.
pub(crate) const IO_CRATES: &[&str] = &[
    "reqwest",
    "hyper",
    "tokio",
    "mio",
    "socket2",
    "axum",
    "rusqlite",
    "libsqlite3-sys",
    "async-std",
    "smol",
    "iana-time-zone",
];
