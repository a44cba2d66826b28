-- Attempt ownership (leases with a fencing token) and schedule state.
--
-- Every process that drives attempts (`spade run`, `spade serve`) registers one `owners` row
-- and renews its lease while it lives. An attempt being driven points at its owner; the claim
-- that sets the pointer also increments `owner_epoch`, the fencing token every engine
-- transaction of the driver checks first, so a process that lost an attempt (its lease expired
-- and another process claimed it) can no longer change it. Lease times are integer unix
-- milliseconds of real time, compared in SQL; on a shared PostgreSQL they become `now()`.
CREATE TABLE owners (
    id              TEXT PRIMARY KEY,          -- uuid v4, new at every process start
    kind            TEXT NOT NULL CHECK (kind IN ('run','serve')),
    host            TEXT NOT NULL,             -- host name, for messages
    host_id         TEXT NOT NULL,             -- machine id: pids mean something only here
    boot_id         TEXT NOT NULL,             -- ... and only within this boot
    pid             INTEGER NOT NULL,
    pid_start       INTEGER NOT NULL,          -- process start time (clock ticks after boot)
    project_id      INTEGER REFERENCES projects(id),   -- serve: the project it serves
    started_at      TEXT NOT NULL,
    heartbeat_ms    INTEGER NOT NULL,
    lease_until_ms  INTEGER NOT NULL,
    stopping        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX owners_by_kind ON owners (kind, lease_until_ms);

ALTER TABLE attempts ADD COLUMN owner_id TEXT REFERENCES owners(id) ON DELETE SET NULL;
ALTER TABLE attempts ADD COLUMN owner_epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE attempts ADD COLUMN owned_since TEXT;
CREATE INDEX attempts_by_state_owner ON attempts (state, owner_id);

-- Schedule state, one row per scheduled workflow of a project, so that a restart continues
-- exactly where the last process stopped. `next_*` is the slot to fire next.
CREATE TABLE schedules (
    id                 INTEGER PRIMARY KEY,
    project_id         INTEGER NOT NULL REFERENCES projects(id),
    workflow           TEXT NOT NULL,
    -- The rule as loaded (kind, value, options, timezone), to notice a changed schedule.
    spec               TEXT NOT NULL,
    next_session_ms    INTEGER,                -- NULL: the schedule has no further slot
    next_run_ms        INTEGER,
    last_session_ms    INTEGER,                -- the last slot fired (or skipped)
    -- Slots whose run time is before this instant were missed while nothing served the
    -- schedule (downtime, disabled): `catchup:` decides what happens to them.
    armed_ms           INTEGER NOT NULL,
    disabled_at        TEXT,
    disabled_reason    TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    UNIQUE (project_id, workflow)
);

-- Slots that did not start an attempt, and why (skipped by `skip_delayed_by`, by `catchup:`,
-- by `skip_on_overtime`, or the session existed already). Fired slots are their sessions.
CREATE TABLE schedule_events (
    id            INTEGER PRIMARY KEY,
    schedule_id   INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    session_time  TEXT NOT NULL,
    run_time      TEXT NOT NULL,
    at            TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('exists','skipped')),
    reason        TEXT NOT NULL
);
CREATE INDEX schedule_events_by_schedule ON schedule_events (schedule_id, id);
CREATE INDEX schedules_due_by_project ON schedules (project_id, next_run_ms, id)
    WHERE disabled_at IS NULL;
