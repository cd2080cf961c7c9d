//! Integration tests of the pure model: money, statuses, the unified record, reading pages.

mod mapping;
mod money;
mod record;
mod status;
