//! The integration tests of payments-postgres, against a throwaway PostgreSQL cluster of their
//! own (skipped, saying so, where PostgreSQL is not installed).

mod schema;
