//! Integration tests of mkp-api.

mod fixtures;
mod properties;
