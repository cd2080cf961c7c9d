-- Version 1 of the payments ledger. Timestamps: `*_utc` columns are fixed-width UTC text for
-- sorting and filtering; the unified columns keep the provider's offset.
CREATE TABLE payments (
    id                  TEXT PRIMARY KEY,
    source_name         TEXT NOT NULL,
    source              TEXT NOT NULL,
    source_id           TEXT NOT NULL,
    status              TEXT NOT NULL,
    provider_status     TEXT NOT NULL,
    amount              TEXT NOT NULL,
    currency            TEXT NOT NULL,
    refunded_amount     TEXT,
    created_at          TEXT NOT NULL,
    created_at_utc      TEXT NOT NULL,
    paid_at             TEXT,
    payer_name          TEXT,
    description         TEXT,
    method              TEXT,
    processor           TEXT NOT NULL,
    processor_reference TEXT,
    payment_link_id     TEXT,
    customer_id         TEXT,
    fail_reason         TEXT,
    record              TEXT NOT NULL,
    first_seen_at       TEXT NOT NULL,
    updated_at          TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX payments_by_created ON payments (created_at_utc, id);
-- Partial indexes: only the rows the incremental decisions look at pay for them.
CREATE INDEX payments_by_link ON payments (source_name, payment_link_id) WHERE payment_link_id IS NOT NULL;
CREATE INDEX payments_unsettled ON payments (source_name, created_at_utc) WHERE status IN ('open', 'pending', 'unknown');

CREATE TABLE status_history (
    seq                 INTEGER PRIMARY KEY,
    payment_id          TEXT NOT NULL,
    from_status         TEXT NOT NULL,
    to_status           TEXT NOT NULL,
    from_provider_status TEXT NOT NULL,
    to_provider_status  TEXT NOT NULL,
    observed_at         TEXT NOT NULL,
    backwards           INTEGER NOT NULL
);
CREATE INDEX status_history_by_payment ON status_history (payment_id, seq);

CREATE TABLE quarantine (
    source_name         TEXT NOT NULL,
    raw                 TEXT NOT NULL,
    source_id           TEXT,
    reason              TEXT NOT NULL,
    first_seen_at       TEXT NOT NULL,
    PRIMARY KEY (source_name, raw)
) WITHOUT ROWID;

CREATE TABLE groups (
    source_name         TEXT NOT NULL,
    id                  TEXT NOT NULL,
    status              TEXT NOT NULL,
    PRIMARY KEY (source_name, id)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    source_name         TEXT PRIMARY KEY,
    checkpoint          TEXT NOT NULL
) WITHOUT ROWID;
