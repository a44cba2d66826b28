-- The schema at the newest version, as the migrations build it (generated:
-- `SPADE_WRITE_SCHEMA=1 cargo test --lib store::migrate` rewrites this file;
-- edit the numbered migrations, never this). A new, empty database is created
-- from it in one step (`src/store/migrate.rs`).
CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,
    dir         TEXT NOT NULL UNIQUE,          -- canonical project directory
    created_at  TEXT NOT NULL
);
CREATE TABLE revisions (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    workflow    TEXT NOT NULL,
    hash        TEXT NOT NULL,                 -- sha256 over the sources (path, text)
    timezone    TEXT NOT NULL,
    sources     TEXT NOT NULL,                 -- [[path, text], ...] as loaded
    created_at  TEXT NOT NULL, root_def_id INTEGER REFERENCES task_defs(id),
    UNIQUE (project_id, workflow, hash)
);
CREATE TABLE sessions (
    id            INTEGER PRIMARY KEY,
    project_id    INTEGER NOT NULL REFERENCES projects(id),
    workflow      TEXT NOT NULL,
    session_time  TEXT NOT NULL,
    session_uuid  TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL,
    UNIQUE (project_id, workflow, session_time)
);
CREATE TABLE attempts (
    id            INTEGER PRIMARY KEY,
    session_id    INTEGER NOT NULL REFERENCES sessions(id),
    attempt_name  TEXT NOT NULL,               -- '' for the default attempt
    revision_id   INTEGER NOT NULL REFERENCES revisions(id),
    params        TEXT NOT NULL,               -- -p/-P params as a JSON object
    state         TEXT NOT NULL CHECK (state = 'running' OR state = 'succeeded' OR state = 'failed' OR state = 'killed'),
    root_task_id  INTEGER REFERENCES tasks(id),-- the live tree (a --rerun makes a new root)
    generation    INTEGER NOT NULL DEFAULT 0,  -- bumped by --rerun
    created_at    TEXT NOT NULL,
    finished_at   TEXT, last_session_time TEXT, next_session_time TEXT, resume_root_task_id INTEGER REFERENCES tasks(id), owner_id TEXT REFERENCES owners(id) ON DELETE SET NULL, owner_epoch INTEGER NOT NULL DEFAULT 0, owned_since TEXT, cancel_requested INTEGER NOT NULL DEFAULT 0, live_tasks INTEGER, resume_from TEXT,
    UNIQUE (session_id, attempt_name)
);
CREATE TABLE tasks (
    id                 INTEGER PRIMARY KEY,
    attempt_id         INTEGER NOT NULL REFERENCES attempts(id),
    parent_id          INTEGER REFERENCES tasks(id),
    -- The parent's subtree epoch this row belongs to; rows of an older epoch are history.
    epoch              INTEGER NOT NULL,
    child_index        INTEGER NOT NULL,
    full_name          TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('group','operator')),
    role               TEXT NOT NULL CHECK (role = 'root' OR role = 'static' OR role = 'sub' OR role = 'check' OR role = 'error'),
    state              TEXT NOT NULL CHECK (state = 'blocked' OR state = 'ready' OR state = 'running' OR state = 'retry_waiting' OR state = 'group_retry_waiting' OR state = 'planned' OR state = 'succeeded' OR state = 'failed' OR state = 'group_error' OR state = 'canceled' OR state = 'skipped'),
    -- The epoch of this task's current children.
    child_epoch        INTEGER NOT NULL DEFAULT 0,
    -- Upstream siblings not succeeded yet: readiness is a seek, not a scan of the siblings.
    pending_upstreams  INTEGER NOT NULL DEFAULT 0,
    retry_policy       TEXT,                   -- resolved _retry (JSON), once per instantiation
    retry_count        INTEGER NOT NULL DEFAULT 0,
    retry_at_ms        INTEGER,                -- unix ms: compared in SQL, so not text
    fence              INTEGER NOT NULL DEFAULT 0,
    interrupted_count  INTEGER NOT NULL DEFAULT 0,
    first_started_ms   INTEGER,                -- first try start (unix ms): _retry.deadline origin
    export_params      TEXT,                   -- operator `export` (visible to its ^sub)
    store_params       TEXT,                   -- written on success only
    reset_store        TEXT,
    error              TEXT,                   -- {message, ...} of the failure
    -- Set while ^error runs: the state the task takes once it is done.
    pending_state      TEXT CHECK (pending_state IN ('failed','group_error')),
    pid                INTEGER,
    pgid               INTEGER,
    created_at         TEXT NOT NULL,
    started_at         TEXT,
    finished_at        TEXT,
    updated_at         TEXT NOT NULL, def_id INTEGER REFERENCES task_defs(id), timeout_at_ms INTEGER, up_fold TEXT, sub_fold TEXT, resumes_task_id INTEGER,
    UNIQUE (parent_id, epoch, child_index)
);
CREATE INDEX tasks_with_store ON tasks (attempt_id)
    WHERE store_params IS NOT NULL OR reset_store IS NOT NULL;
CREATE TABLE task_edges (
    upstream_id    INTEGER NOT NULL REFERENCES tasks(id),
    downstream_id  INTEGER NOT NULL REFERENCES tasks(id),
    PRIMARY KEY (upstream_id, downstream_id)
) WITHOUT ROWID;
CREATE INDEX task_edges_by_downstream ON task_edges (downstream_id, upstream_id);
CREATE TABLE task_runs (
    id           INTEGER PRIMARY KEY,
    task_id      INTEGER NOT NULL REFERENCES tasks(id),
    fence        INTEGER NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    outcome      TEXT CHECK (outcome = 'succeeded' OR outcome = 'failed' OR outcome = 'timed_out' OR outcome = 'interrupted'),
    message      TEXT, params TEXT, secret_keys TEXT, params_refs TEXT,
    UNIQUE (task_id, fence)
);
CREATE TABLE task_logs (
    id         INTEGER PRIMARY KEY,
    task_id    INTEGER NOT NULL REFERENCES tasks(id),
    fence      INTEGER NOT NULL,
    at         TEXT NOT NULL,
    chunk      TEXT NOT NULL
);
CREATE INDEX task_logs_by_task ON task_logs (task_id, fence, id);
CREATE TABLE state_transitions (
    id         INTEGER PRIMARY KEY,
    task_id    INTEGER NOT NULL REFERENCES tasks(id),
    from_state TEXT,
    to_state   TEXT NOT NULL,
    at         TEXT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX state_transitions_by_task ON state_transitions (task_id, id);
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
CREATE INDEX attempts_by_state_owner ON attempts (state, owner_id);
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
CREATE TABLE task_defs (
    id      INTEGER PRIMARY KEY,
    export  TEXT NOT NULL,
    body    TEXT NOT NULL
);
CREATE INDEX tasks_by_timeout ON tasks (timeout_at_ms) WHERE timeout_at_ms IS NOT NULL;
CREATE INDEX tasks_by_attempt ON tasks (attempt_id);
CREATE INDEX tasks_retry_due ON tasks (retry_at_ms)
    WHERE state IN ('retry_waiting', 'group_retry_waiting');
CREATE INDEX tasks_blocked_children ON tasks (parent_id, epoch, pending_upstreams)
    WHERE state = 'blocked';
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
    target_state       TEXT CHECK (target_state = 'succeeded' OR target_state = 'failed' OR target_state = 'killed'),
    created_at         TEXT NOT NULL,
    finished_at        TEXT,
    UNIQUE (task_id, try_index)
);
CREATE INDEX require_waits_by_target ON require_waits (target_attempt_id, state);
CREATE INDEX require_waits_by_attempt ON require_waits (attempt_id, state);
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
CREATE INDEX attempts_by_root_task ON attempts (root_task_id);
CREATE INDEX attempts_by_resume_root ON attempts (resume_root_task_id)
    WHERE resume_root_task_id IS NOT NULL;
CREATE INDEX tasks_open_children ON tasks (parent_id, epoch)
    WHERE (state = 'ready' OR state = 'running' OR state = 'retry_waiting' OR state = 'group_retry_waiting' OR state = 'planned');
CREATE INDEX attempts_by_state_id ON attempts (state, id);
CREATE TABLE run_values (
    id         INTEGER PRIMARY KEY,
    attempt_id INTEGER NOT NULL REFERENCES attempts(id),
    digest     TEXT NOT NULL,
    json       TEXT NOT NULL,
    UNIQUE (attempt_id, digest)
);
