//! Integration tests of the pure model: money, statuses, the unified record.

mod money;
mod record;
mod status;
