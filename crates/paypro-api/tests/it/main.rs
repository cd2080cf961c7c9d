//! Integration tests of paypro-api.

mod client;
mod fixtures;
mod properties;
