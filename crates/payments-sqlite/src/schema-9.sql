-- Version 9: a run stopped before it finished (its time budget, a signal) is `stopped`: the
-- next run resumes it, and it is not a failure. And each movement a statement booked keeps
-- what it was and how much (`booking`, the codec's JSON of its kind and amount), so that a
-- booked movement that changed since is corrected by the difference on the next statement.
-- Bookings recorded before have none.
ALTER TABLE statement_refs ADD COLUMN booking TEXT;
ALTER TABLE runs ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;
