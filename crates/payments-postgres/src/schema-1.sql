-- Version 1 of the PostgreSQL ledger. Everything lives in the schema `ledger`, so that the
-- database can be one the platform's other systems already use. Every ledger row is keyed by
-- account; removing an account removes its rows (ON DELETE CASCADE).
--
-- Timestamps: `*_utc` and lease columns are timestamptz (instants, for sorting and filtering);
-- the unified columns `created_at` and `paid_at` keep the provider's offset as RFC 3339 text.
CREATE SCHEMA ledger;

-- Facts about the database itself: `master_key_check`, a fixed text sealed with the master key
-- that sealed the account keys, so that a wrong master key is told at once.
CREATE TABLE ledger.meta (
    key                 text PRIMARY KEY,
    value               text NOT NULL
);

CREATE TABLE ledger.accounts (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name                text NOT NULL UNIQUE,
    disabled            boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- One row per source an account syncs: its sealed key, its options, when it is due, and its
-- lease. A worker leases a row (`FOR UPDATE SKIP LOCKED`) until `lease_expires_at`, renews the
-- lease while it works and releases it with the next due time. The lease is also the fence:
-- a commit lands only while its worker still holds the lease.
CREATE TABLE ledger.account_sources (
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    source_name         text NOT NULL,
    -- Base URL, rate limit, run interval, …: JSON, so that options can be added.
    options             jsonb NOT NULL DEFAULT '{}',
    -- The API key, sealed with the master key (XChaCha20-Poly1305; nonce, then ciphertext),
    -- bound to the account and source it belongs to.
    sealed_key          bytea NOT NULL,
    next_run_at         timestamptz NOT NULL DEFAULT now(),
    leased_by           text,
    lease_expires_at    timestamptz,
    PRIMARY KEY (account_id, source_name)
);
CREATE INDEX account_sources_due ON ledger.account_sources (next_run_at);

CREATE TABLE ledger.payments (
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    id                  text NOT NULL,
    source_name         text NOT NULL,
    source              text NOT NULL,
    source_id           text NOT NULL,
    status              text NOT NULL,
    provider_status     text NOT NULL,
    amount              numeric NOT NULL,
    currency            text NOT NULL,
    refunded_amount     numeric,
    created_at          text NOT NULL,
    created_at_utc      timestamptz NOT NULL,
    paid_at             text,
    payer_name          text,
    description         text,
    method              text,
    processor           text NOT NULL,
    processor_reference text,
    payment_link_id     text,
    customer_id         text,
    fail_reason         text,
    -- The unified record exactly as the engine committed it.
    record              jsonb NOT NULL,
    first_seen_at       timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX payments_by_created ON ledger.payments (account_id, created_at_utc, id);

-- Every superseded version of a payment: when a commit replaces a stored payment, the stored
-- row is first copied here with when it was observed and when it was superseded.
CREATE TABLE ledger.versions (
    seq                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    payment_id          text NOT NULL,
    source              text NOT NULL,
    status              text NOT NULL,
    created_at_utc      timestamptz NOT NULL,
    record              jsonb NOT NULL,
    observed_at         timestamptz NOT NULL,
    superseded_at       timestamptz NOT NULL,
    status_only         boolean NOT NULL DEFAULT false
);
CREATE INDEX versions_by_payment ON ledger.versions (account_id, payment_id, seq);
CREATE INDEX versions_by_superseded ON ledger.versions (account_id, superseded_at);

CREATE TABLE ledger.quarantine (
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    source_name         text NOT NULL,
    raw                 text NOT NULL,
    source_id           text,
    reason              text NOT NULL,
    first_seen_at       timestamptz NOT NULL,
    PRIMARY KEY (account_id, source_name, raw)
);

CREATE TABLE ledger.groups (
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    source_name         text NOT NULL,
    id                  text NOT NULL,
    status              text NOT NULL,
    state               jsonb NOT NULL,
    PRIMARY KEY (account_id, source_name, id)
);

CREATE TABLE ledger.checkpoints (
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    source_name         text NOT NULL,
    -- Text, not jsonb: a checkpoint that does not read back must be reported, not refused.
    checkpoint          text NOT NULL,
    PRIMARY KEY (account_id, source_name)
);

CREATE TABLE ledger.unknown_words (
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    source_name         text NOT NULL,
    word                text NOT NULL,
    first_seen_at       timestamptz NOT NULL,
    PRIMARY KEY (account_id, source_name, word)
);

-- How each run ended. A worker's run is inserted when it leases the source (`worker`,
-- `started_at`, `lease_expires_at` renewed with the lease) and completed when the run ends; a
-- run whose worker was killed stays without `finished_at`, and its lease's expiry bounds it.
CREATE TABLE ledger.runs (
    seq                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    source_name         text NOT NULL,
    worker              text,
    started_at          timestamptz NOT NULL,
    finished_at         timestamptz,
    lease_expires_at    timestamptz,
    kind                text,
    resumed             boolean NOT NULL DEFAULT false,
    pages               bigint NOT NULL DEFAULT 0,
    requests            bigint NOT NULL DEFAULT 0,
    new                 bigint NOT NULL DEFAULT 0,
    changed             bigint NOT NULL DEFAULT 0,
    unchanged           bigint NOT NULL DEFAULT 0,
    backwards           bigint NOT NULL DEFAULT 0,
    quarantined         bigint NOT NULL DEFAULT 0,
    waited_ms           bigint NOT NULL DEFAULT 0,
    error               text,
    feed_incomplete     boolean NOT NULL DEFAULT false
);
CREATE INDEX runs_by_source ON ledger.runs (account_id, source_name, seq);
