-- Version 2: how each run of each source ended, for `payments status`.
CREATE TABLE runs (
    seq                 INTEGER PRIMARY KEY,
    source_name         TEXT NOT NULL,
    started_at          TEXT NOT NULL,
    finished_at         TEXT NOT NULL,
    kind                TEXT,
    resumed             INTEGER NOT NULL,
    pages               INTEGER NOT NULL,
    requests            INTEGER NOT NULL,
    new                 INTEGER NOT NULL,
    changed             INTEGER NOT NULL,
    unchanged           INTEGER NOT NULL,
    backwards           INTEGER NOT NULL,
    quarantined         INTEGER NOT NULL,
    waited_ms           INTEGER NOT NULL,
    error               TEXT
);
CREATE INDEX runs_by_source ON runs (source_name, seq);
