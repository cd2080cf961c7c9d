-- Version 5: each movement a statement booked keeps what it was and how much (`booking`, the
-- codec's JSON of its kind and amount), so that a booked movement that changed since is
-- corrected by the difference on the next statement. Bookings recorded before have none.
ALTER TABLE ledger.statement_refs ADD COLUMN booking text;
