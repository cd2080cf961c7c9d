//! Integration tests of payments-sync: real sources against the sandbox, into a MemoryStore.

mod faults;
mod feed;
mod healing;
mod limiter;
mod retry;
mod suite;
mod sync;
mod trust;
