//! Integration tests of the sandbox over real loopback HTTP.

mod behaviour;
mod content;
mod endpoint_faults;
mod feeds;
mod webhooks;
