-- Version 2: the inbox of webhook deliveries, per account. Each verified delivery is stored here
-- before the provider is answered, once per account, source and key (a redelivery finds its
-- row); `hints` is the JSON text of what it names to read again (text, not jsonb, as a
-- checkpoint: a value that does not read back is reported, not refused). A delivery is pending
-- until `processed_at` is set; a processed one is kept a while to recognise redeliveries.
CREATE TABLE ledger.inbox (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id          bigint NOT NULL REFERENCES ledger.accounts (id) ON DELETE CASCADE,
    source_name         text NOT NULL,
    key                 text NOT NULL,
    hints               text NOT NULL,
    kind                text NOT NULL,
    received_at         timestamptz NOT NULL,
    processed_at        timestamptz,
    UNIQUE (account_id, source_name, key)
);
CREATE INDEX inbox_pending ON ledger.inbox (account_id, source_name, received_at, id)
    WHERE processed_at IS NULL;
CREATE INDEX inbox_processed ON ledger.inbox (account_id, processed_at)
    WHERE processed_at IS NOT NULL;
