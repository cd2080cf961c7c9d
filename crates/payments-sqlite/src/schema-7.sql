-- Version 7: the inbox of webhook deliveries. Each verified delivery is stored here before the
-- provider is answered, once per source and key (a redelivery finds its row); `hints` is the
-- JSON of what it names to read again. A delivery is pending until `processed_at` is set, and
-- a processed one is kept a while to recognise redeliveries, then pruned.
CREATE TABLE inbox (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    source_name         TEXT NOT NULL,
    key                 TEXT NOT NULL,
    hints               TEXT NOT NULL,
    kind                TEXT NOT NULL,
    received_at         TEXT NOT NULL,
    processed_at        TEXT,
    UNIQUE (source_name, key)
);
CREATE INDEX inbox_pending ON inbox (source_name, received_at, id) WHERE processed_at IS NULL;
CREATE INDEX inbox_processed ON inbox (processed_at) WHERE processed_at IS NOT NULL;
