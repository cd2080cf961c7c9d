-- Version 8: the books. The records of the sources' book listings (refunds, chargebacks,
-- payouts; `record` is the codec's JSON of the kept record, `updated_at` the ordering stamp),
-- their superseded versions, where each listing's walk stands, and the statements issued
-- (never changed once written) with the references of the movements each books.
CREATE TABLE book_records (
    id                  TEXT PRIMARY KEY,
    source_name         TEXT NOT NULL,
    source              TEXT NOT NULL,
    kind                TEXT NOT NULL,
    created_at_utc      TEXT NOT NULL,
    record              TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);
CREATE INDEX book_records_by_source ON book_records (source, created_at_utc, id);
CREATE TABLE book_versions (
    record_id           TEXT NOT NULL,
    record              TEXT NOT NULL,
    observed_at         TEXT NOT NULL,
    superseded_at       TEXT NOT NULL
);
CREATE INDEX book_versions_by_record ON book_versions (record_id, observed_at);
CREATE TABLE book_walks (
    source_name         TEXT NOT NULL,
    kind                TEXT NOT NULL,
    walk                TEXT NOT NULL,
    PRIMARY KEY (source_name, kind)
);
CREATE TABLE statements (
    account             TEXT NOT NULL,
    number              INTEGER NOT NULL,
    day                 TEXT NOT NULL,
    closing             TEXT NOT NULL,
    digest              TEXT NOT NULL,
    body                TEXT NOT NULL,
    issued_at           TEXT NOT NULL,
    PRIMARY KEY (account, number),
    UNIQUE (account, day)
);
CREATE TABLE statement_refs (
    account             TEXT NOT NULL,
    reference           TEXT NOT NULL,
    number              INTEGER NOT NULL,
    PRIMARY KEY (account, reference)
);
