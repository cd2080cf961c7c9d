//! Integration tests of paypro-api.

mod client;
mod feeds;
mod fixtures;
mod properties;
