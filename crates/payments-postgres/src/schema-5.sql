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
-- What the provider last said of each key's rate limit (the limiter's snapshot, JSON), noted
-- after each run, so that the next run with that key, under any account and on any worker,
-- starts from it: a key shared by two accounts keeps its limit across their runs.
CREATE TABLE ledger.key_limits (
    key_fingerprint text PRIMARY KEY,
    seen jsonb NOT NULL,
    noted_at timestamptz NOT NULL DEFAULT now()
);
