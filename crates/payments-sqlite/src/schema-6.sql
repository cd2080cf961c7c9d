-- Version 6: every version of a payment is kept, not only its status moves. When a commit
-- replaces a stored payment, the stored row is first copied here, with when it was first
-- observed (`payments.updated_at`) and when it was superseded. With the current rows this
-- reproduces the ledger as it was known at any moment (`export --as-of`).
CREATE TABLE versions (
    seq                 INTEGER PRIMARY KEY,
    payment_id          TEXT NOT NULL,
    source              TEXT NOT NULL,
    status              TEXT NOT NULL,
    created_at_utc      TEXT NOT NULL,
    record              TEXT NOT NULL,
    observed_at         TEXT NOT NULL,
    superseded_at       TEXT NOT NULL,
    -- 1 when only the status of this version is known (migrated from `status_history`).
    status_only         INTEGER NOT NULL
);
CREATE INDEX versions_by_payment ON versions (payment_id, seq);
CREATE INDEX versions_by_superseded ON versions (superseded_at);

-- The status history becomes versions. Each move superseded a version whose status was the
-- move's `from`; only that status is known of it, so its other fields are the current ones.
-- It was observed from the move before it (or the payment's first sighting) to the move.
INSERT INTO versions (payment_id, source, status, created_at_utc, record, observed_at, superseded_at, status_only)
SELECT h.payment_id, p.source, h.from_status, p.created_at_utc,
       json_set(p.record, '$.status', h.from_status, '$.provider_status', h.from_provider_status),
       COALESCE(LAG(h.observed_at) OVER (PARTITION BY h.payment_id ORDER BY h.seq), p.first_seen_at),
       h.observed_at, 1
FROM status_history h JOIN payments p ON p.id = h.payment_id
ORDER BY h.seq;
-- Version 5 also replaced a payment when a field other than its status changed (a refund that
-- kept `partially_refunded`, a description), which left no history row: the current row is
-- observed from `updated_at`, but the payment was known since its last status move (or its
-- first sighting). A status-only version bridges that time, with the status it had then.
INSERT INTO versions (payment_id, source, status, created_at_utc, record, observed_at, superseded_at, status_only)
SELECT p.id, p.source, COALESCE(last.to_status, p.status), p.created_at_utc,
       json_set(p.record, '$.status', COALESCE(last.to_status, p.status),
                '$.provider_status', COALESCE(last.to_provider_status, p.provider_status)),
       COALESCE(last.observed_at, p.first_seen_at), p.updated_at, 1
FROM payments p
LEFT JOIN status_history last ON last.seq = (
    SELECT MAX(seq) FROM status_history WHERE payment_id = p.id
)
WHERE COALESCE(last.observed_at, p.first_seen_at) < p.updated_at
ORDER BY p.id;
DROP TABLE status_history;

-- The provider status words outside the status table that the ledger has seen, so that each is
-- reported once per ledger instead of on every run. (Ledgers from before report theirs once.)
CREATE TABLE unknown_words (
    source_name         TEXT NOT NULL,
    word                TEXT NOT NULL,
    first_seen_at       TEXT NOT NULL,
    PRIMARY KEY (source_name, word)
) WITHOUT ROWID;

-- Whether a run's change feed no longer reached the last change applied (so it re-verified the
-- whole listing instead).
ALTER TABLE runs ADD COLUMN feed_incomplete INTEGER NOT NULL DEFAULT 0;
