-- While an attempt resumes, each new task row names the previous try's row it takes over
-- (`NULL`: none, so it and its whole subtree run). The match is decided once, when the row is
-- inserted (same full name, unchanged definition fingerprint, nothing before it running
-- again), and read back by its children, so it never has to be recomputed from the parents.
-- Rows of a resume begun by an older spade have no match: their children run again.
ALTER TABLE tasks ADD COLUMN resumes_task_id INTEGER;
-- `spade retry --from TASK` (Digdag's `resume.from`): the task, by full name, that runs again
-- with everything after it although it succeeded and did not change; `NULL` otherwise.
ALTER TABLE attempts ADD COLUMN resume_from TEXT;
