-- Version 5: the file says it is a payments ledger (SQLite's application_id, "PAYL"), so that
-- read-only commands can refuse another program's database without touching it.
PRAGMA application_id = 1346459980;
