-- Version 4: the store keeps the engine's facts instead of deriving them.
-- A group's state (folded by the engine from its payments) is kept as the engine wrote it;
-- groups from before have none, so the engine reads each of them once more.
ALTER TABLE groups ADD COLUMN state TEXT;
-- The engine asks for its unsettled payments by status; that question reads a few days of
-- `payments_by_created`, so the partial index over unsettled words is no longer needed.
DROP INDEX payments_unsettled;
