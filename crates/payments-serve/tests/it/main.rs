//! `payments-serve` over loopback: webhooks posted to its routes, read from the sandbox by a
//! [`Service`] over a [`MemoryStore`], requests counted at the sandbox.

mod webhooks;
