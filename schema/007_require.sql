-- `require>`: one row per try of a require task, made in the transaction that found or started
-- the required attempt. Its options (the required workflow, session time, attempt name,
-- rerun_on, ignore_failure, params) are evaluated once, when the try begins, and kept here:
-- a wake-up, a restart of spade or a resume of the waiting run reads them back and never
-- evaluates them again (Digdag re-evaluated them at every poll: a random `retry_attempt_name`
-- started a new attempt each time). The transaction that finishes the required attempt marks
-- its rows `done`.
CREATE TABLE require_waits (
    id                 INTEGER PRIMARY KEY,
    task_id            INTEGER NOT NULL REFERENCES tasks(id),
    try_index          INTEGER NOT NULL,       -- the task's retry_count when the try began
    attempt_id         INTEGER NOT NULL REFERENCES attempts(id),  -- the requiring attempt
    spec               TEXT NOT NULL,          -- the evaluated options (engine::require::Spec)
    target_attempt_id  INTEGER NOT NULL REFERENCES attempts(id),
    -- 1 when this try started the required attempt, 0 when it found one (Digdag's
    -- `require_kicked`).
    kicked             INTEGER NOT NULL,
    -- The name `rerun_on` generated (once) for the new attempt.
    rerun_name         TEXT,
    state              TEXT NOT NULL CHECK (state IN ('waiting','done')),
    target_state       TEXT CHECK (target_state IN ('succeeded','failed','killed')),
    created_at         TEXT NOT NULL,
    finished_at        TEXT,
    UNIQUE (task_id, try_index)
);
CREATE INDEX require_waits_by_target ON require_waits (target_attempt_id, state);
CREATE INDEX require_waits_by_attempt ON require_waits (attempt_id, state);
