//! The integration tests of payments-postgres, against a throwaway PostgreSQL cluster.
