-- The web UI's audit trail: one row per action taken through the UI (kill, retry, run now,
-- pause, resume, backfill), written after the action returned, with what it did or why it
-- was refused. Shown on the workflow and attempt pages; never updated or deleted.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,                 -- RFC 3339 UTC
    actor       TEXT NOT NULL,                 -- 'loopback' or 'token', and the peer address
    action      TEXT NOT NULL,                 -- kill, retry_failed, retry_all, run_now, ...
    workflow    TEXT,
    attempt_id  INTEGER REFERENCES attempts(id),
    detail      TEXT NOT NULL,                 -- the target as shown in the confirmation
    outcome     TEXT NOT NULL                  -- 'ok' or the error message
);
CREATE INDEX audit_by_workflow ON audit (workflow, id);
CREATE INDEX audit_by_attempt ON audit (attempt_id, id);
