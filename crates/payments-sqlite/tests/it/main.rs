//! Integration tests of the SQLite store, driven by real syncs against the sandbox.

mod store;
