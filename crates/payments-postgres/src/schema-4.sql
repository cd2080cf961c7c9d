-- Version 4: the books, per account. The records of the sources' book listings (refunds,
-- chargebacks, payouts; `record` is the codec's JSON of the kept record, `updated_at` the
-- ordering stamp), their superseded versions, where each listing's walk stands, and the
-- statements issued (never changed once written) with the references each books.
CREATE TABLE ledger.book_records (
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    id                  text NOT NULL,
    source_name         text NOT NULL,
    source              text NOT NULL,
    kind                text NOT NULL,
    created_at_utc      timestamptz NOT NULL,
    record              jsonb NOT NULL,
    updated_at          timestamptz NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX book_records_by_source ON ledger.book_records (account_id, source, created_at_utc, id);
CREATE TABLE ledger.book_versions (
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    record_id           text NOT NULL,
    record              jsonb NOT NULL,
    observed_at         timestamptz NOT NULL,
    superseded_at       timestamptz NOT NULL
);
CREATE INDEX book_versions_by_record ON ledger.book_versions (account_id, record_id, observed_at);
CREATE TABLE ledger.book_walks (
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    source_name         text NOT NULL,
    kind                text NOT NULL,
    walk                text NOT NULL,
    PRIMARY KEY (account_id, source_name, kind)
);
CREATE TABLE ledger.statements (
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    account             text NOT NULL,
    number              bigint NOT NULL,
    day                 text NOT NULL,
    closing             text NOT NULL,
    digest              text NOT NULL,
    body                text NOT NULL,
    issued_at           timestamptz NOT NULL,
    PRIMARY KEY (account_id, account, number),
    UNIQUE (account_id, account, day)
);
CREATE TABLE ledger.statement_refs (
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    account             text NOT NULL,
    reference           text NOT NULL,
    number              bigint NOT NULL,
    PRIMARY KEY (account_id, account, reference)
);
