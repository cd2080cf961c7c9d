//! Integration tests of mkp-api.

mod client;
mod fixtures;
mod mock;
mod properties;
