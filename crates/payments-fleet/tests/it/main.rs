//! The fleet's ingress end to end: workers in this process on a throwaway PostgreSQL, each
//! serving `fleet_router` on loopback, the providers' sandbox behind them.

mod ingress;
