-- spade store, version 1. Applied by store::migrate inside one IMMEDIATE transaction.
-- Times are RFC 3339 UTC strings (jiff::Timestamp's Display), so they sort as text.

CREATE TABLE projects (
    id          INTEGER PRIMARY KEY,
    dir         TEXT NOT NULL UNIQUE,          -- canonical project directory
    created_at  TEXT NOT NULL
);

-- One loaded definition of a workflow: a resume reuses the revision its attempt was made with.
CREATE TABLE revisions (
    id          INTEGER PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    workflow    TEXT NOT NULL,
    hash        TEXT NOT NULL,                 -- sha256 over the sources (path, text)
    timezone    TEXT NOT NULL,
    definition  TEXT NOT NULL,                 -- the root TaskDef as JSON (engine::def)
    sources     TEXT NOT NULL,                 -- [[path, text], ...] as loaded
    created_at  TEXT NOT NULL,
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
    state         TEXT NOT NULL CHECK (state IN ('running','succeeded','failed','killed')),
    root_task_id  INTEGER REFERENCES tasks(id),-- the live tree (a --rerun makes a new root)
    generation    INTEGER NOT NULL DEFAULT 0,  -- bumped by --rerun
    created_at    TEXT NOT NULL,
    finished_at   TEXT,
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
    role               TEXT NOT NULL CHECK (role IN ('root','static','sub','check','error')),
    definition         TEXT NOT NULL,          -- this task's TaskDef subtree as JSON
    export_def         TEXT NOT NULL,          -- its `_export:` alone, read for every descendant
    state              TEXT NOT NULL CHECK (state IN ('blocked','ready','running','retry_waiting','group_retry_waiting','planned','succeeded','failed','group_error','canceled','skipped')),
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
    params             TEXT,                   -- evaluated once at the current run's start
    secret_keys        TEXT,
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
    updated_at         TEXT NOT NULL,
    UNIQUE (parent_id, epoch, child_index)
);
CREATE INDEX tasks_by_attempt_state ON tasks (attempt_id, state);
-- Most attempts store nothing: one seek tells the scope builder to skip the upstream walk.
CREATE INDEX tasks_with_store ON tasks (attempt_id)
    WHERE store_params IS NOT NULL OR reset_store IS NOT NULL;
CREATE INDEX tasks_by_parent_state ON tasks (parent_id, epoch, state, pending_upstreams);
CREATE INDEX tasks_by_state_retry_at ON tasks (state, retry_at_ms);

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
    outcome      TEXT CHECK (outcome IN ('succeeded','failed','timed_out','interrupted')),
    message      TEXT,
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
