//! Integration tests of payments-sync: real sources against the sandbox, into a MemoryStore.

mod faults;
mod feed;
mod healing;
mod hints;
mod limiter;
mod retry;
mod suite;
mod sync;
mod trust;
