-- A partial index whose WHERE is `state IN (5 values)` made SQLite build a temporary table
-- twice on every state change (once for the old row, once for the new), and a CHECK of the
-- same shape once more: an IN list of more than two constants is evaluated through a
-- temporary b-tree built each time the statement runs. The same predicate written with `=`
-- and `OR` costs a few comparisons. The CHECK constraints are rewritten the same way by the
-- step after this file (`store::migrate::checks_without_in_lists`); what they accept does not
-- change. A query must still repeat the index's WHERE text exactly
-- (`store::rows::PROGRESSING_SQL`) for SQLite to use it.
DROP INDEX tasks_open_children;
CREATE INDEX tasks_open_children ON tasks (parent_id, epoch)
    WHERE (state = 'ready' OR state = 'running' OR state = 'retry_waiting' OR state = 'group_retry_waiting' OR state = 'planned');
