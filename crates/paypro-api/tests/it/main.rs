//! Integration tests of paypro-api.

mod books;
mod client;
mod feeds;
mod fixtures;
mod properties;
