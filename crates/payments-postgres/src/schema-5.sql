-- Version 5: a run stopped before it finished (its time budget, a signal, a lost lease) is
-- `stopped`: the next run resumes it, and it is not a failure. And each movement a statement
-- booked keeps what it was and how much (`booking`, the codec's JSON of its kind and amount),
-- so that a booked movement that changed since is corrected by the difference on the next
-- statement. Bookings recorded before have none. And each account-source keeps a keyed
-- fingerprint of its API key (HMAC under the master key, never the key), so that sources
-- sharing a key are never leased at once: the key's rate limit holds across the fleet.
ALTER TABLE ledger.statement_refs ADD COLUMN booking text;
ALTER TABLE ledger.runs ADD COLUMN stopped boolean NOT NULL DEFAULT false;
ALTER TABLE ledger.account_sources ADD COLUMN key_fingerprint text;
CREATE INDEX account_sources_by_key ON ledger.account_sources (key_fingerprint);
-- What the provider last said of each key's rate limit (the limiter's snapshot, JSON, its
-- times on the database's clock), noted after each run, so that the next run with that key,
-- under any account and on any worker, starts from it: a key shared by two accounts keeps its
-- limit across their runs. `seen_at` is the snapshot's time: a newer one replaces an older.
CREATE TABLE ledger.key_limits (
    key_fingerprint text PRIMARY KEY,
    seen jsonb NOT NULL,
    seen_at timestamptz NOT NULL,
    noted_at timestamptz NOT NULL DEFAULT now()
);
-- The lease queue's order: the earliest of a source's due and hinted times. A lease walks it
-- from the front and stops at the first source it may take, rather than sorting every source
-- of the fleet at each lease.
CREATE INDEX account_sources_queue ON ledger.account_sources (LEAST(next_run_at, hinted_at));
-- The live leases, by key: few rows (a released source has no lease_expires_at), read at
-- each lease and by idle workers to keep one key, one lease.
CREATE INDEX account_sources_leased ON ledger.account_sources (key_fingerprint, lease_expires_at)
    WHERE lease_expires_at IS NOT NULL;
