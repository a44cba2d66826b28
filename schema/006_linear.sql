-- Linear cost per task (issue 10). Applied by store::migrate, followed in the same
-- transaction by `engine::def::convert_legacy`, which turns every old `tasks.definition` into
-- `task_defs` nodes and fills the store folds of existing rows, and then drops
-- `tasks.definition` and `tasks.export_def`.

-- Each node of a definition tree, stored once: its own fields, its children and handlers as
-- ids of other nodes (engine::def). `export` comes first and is '' for most nodes, so the scope
-- of a task reads its ancestors' `_export:` without reading past their bodies.
CREATE TABLE task_defs (
    id      INTEGER PRIMARY KEY,
    export  TEXT NOT NULL,
    body    TEXT NOT NULL
);

-- The root node of a revision: a `--rerun` or a resume of the same revision reuses it.
ALTER TABLE revisions ADD COLUMN root_def_id INTEGER REFERENCES task_defs(id);
ALTER TABLE revisions DROP COLUMN definition;

ALTER TABLE tasks ADD COLUMN def_id INTEGER REFERENCES task_defs(id);
-- When the current try of a planned task (a group, or a generator with its children) passes
-- its `_timeout` (unix ms); NULL without `_timeout`.
ALTER TABLE tasks ADD COLUMN timeout_at_ms INTEGER;
CREATE INDEX tasks_by_timeout ON tasks (timeout_at_ms) WHERE timeout_at_ms IS NOT NULL;

-- The evaluated params of a run live with the run: the task row stays small however large
-- the params are (a generator's `_command` can hold thousands of values), so reading a parent
-- or an ancestor never reads past them.
ALTER TABLE task_runs ADD COLUMN params TEXT;
ALTER TABLE task_runs ADD COLUMN secret_keys TEXT;
UPDATE task_runs SET
    params = (SELECT t.params FROM tasks t WHERE t.id = task_runs.task_id),
    secret_keys = (SELECT t.secret_keys FROM tasks t WHERE t.id = task_runs.task_id)
  WHERE fence = (SELECT t.fence FROM tasks t WHERE t.id = task_runs.task_id);
ALTER TABLE tasks DROP COLUMN params;
ALTER TABLE tasks DROP COLUMN secret_keys;

-- Store params folded (engine::params), so a scope reads one row per ancestor: `sub_fold` is
-- what a succeeded task and its live subtree stored, depth first; `up_fold` what the task's
-- upstream siblings and their subtrees stored, in Digdag's order, once they succeeded. NULL
-- when nothing was stored (most rows).
ALTER TABLE tasks ADD COLUMN up_fold TEXT;
ALTER TABLE tasks ADD COLUMN sub_fold TEXT;

-- Indexes a state change touches as little as possible: the attempt's rows by attempt alone
-- (no state), retry waits in a partial index only waiting rows enter, and a task's children
-- in two small partial indexes, the blocked ones (readiness) and the progressing ones (is the
-- parent done?); finished rows leave both. Every transition used to rewrite entries of three
-- indexes holding every row (attempt+state, state+retry time, parent+state). A query must
-- repeat a partial index's WHERE text (store::rows::PROGRESSING_SQL) for SQLite to use it.
DROP INDEX tasks_by_attempt_state;
CREATE INDEX tasks_by_attempt ON tasks (attempt_id);
DROP INDEX tasks_by_state_retry_at;
CREATE INDEX tasks_retry_due ON tasks (retry_at_ms)
    WHERE state IN ('retry_waiting', 'group_retry_waiting');
DROP INDEX tasks_by_parent_state;
CREATE INDEX tasks_blocked_children ON tasks (parent_id, epoch, pending_upstreams)
    WHERE state = 'blocked';
CREATE INDEX tasks_open_children ON tasks (parent_id, epoch)
    WHERE state IN ('ready', 'running', 'retry_waiting', 'group_retry_waiting', 'planned');

-- Rows of the attempt's live tree (history rows of retries and earlier tries excluded), for
-- the task limit; NULL until first counted.
ALTER TABLE attempts ADD COLUMN live_tasks INTEGER;
