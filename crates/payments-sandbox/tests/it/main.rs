//! Integration tests of the sandbox over real loopback HTTP.

mod behaviour;
mod books;
mod content;
mod endpoint_faults;
mod feeds;
mod webhooks;
