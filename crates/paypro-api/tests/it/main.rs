//! Integration tests of paypro-api.

mod fixtures;
mod properties;
