//! The fleet worker as a library: a [`Worker`] keeps the accounts of a PostgreSQL ledger
//! ([`payments_postgres::PgLedger`]) current, as one of any number of workers on any number of
//! machines.
//!
//! - [`Worker::round`] leases due account-sources up to the worker's concurrency (the database
//!   is the queue: `FOR UPDATE SKIP LOCKED`) and starts a run for each; [`Worker::sync`] is one
//!   such run: the source is built from its stored options through the source registry
//!   ([`spec_of`], then [`payments_sources::SourceSpec::build`]), synced by a
//!   [`payments_sync::Syncer`] on a leased store while a task renews the lease (a lost lease
//!   stops the run at the next page boundary, [`payments_sync::StopReason::LeaseLost`]), and
//!   the lease is released with the source's next due time.
//! - [`next_due`] decides that time: a pure function of how the run ended, the source's
//!   `every` and whether the worker was stopped.
//! - [`Worker::run`] repeats rounds until the worker is stopped (or, with
//!   [`WorkerOptions::until_idle`], until nothing is due), sleeping while nothing is.
//!
//! - [`FleetInlet`] and [`FleetHealth`] are what `payments worker --listen` serves: any
//!   account's webhooks into its inbox (the fleet is woken by `LISTEN payments_hints`, and the
//!   lease holder reads them first), and `/healthz`.
//!
//! The worker prints nothing: it reports each run's end and each failure of the queue as an
//! [`Event`], so that `payments worker` prints them its own way.
#![forbid(unsafe_code)]

mod ingress;
mod options;
mod schedule;
mod worker;

pub use ingress::{FleetGauges, FleetHealth, FleetInlet, STUCK_AFTER_POLLS, STUCK_GRACE};
pub use options::{OptionsError, options_of, spec_of};
pub use schedule::{LONGEST_BACKOFF, RETRY_AFTER_FAILURE, RunEnd, next_due};
pub use worker::{Event, RunError, Worker, WorkerOptions, worker_name};
