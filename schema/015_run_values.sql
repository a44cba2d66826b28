-- Param values of runs whose JSON text is 512 bytes or more, stored once per attempt and
-- named by digest from `task_runs.params_refs` (`{"key": "digest"}`; the key's value in
-- `task_runs.params` is null). A 100 KB `_export` on the root used to be written with every
-- run of the attempt (see `src/store/run_values.rs`).
CREATE TABLE run_values (
    id         INTEGER PRIMARY KEY,
    attempt_id INTEGER NOT NULL REFERENCES attempts(id),
    digest     TEXT NOT NULL,
    json       TEXT NOT NULL,
    UNIQUE (attempt_id, digest)
);

ALTER TABLE task_runs ADD COLUMN params_refs TEXT;
