-- Resume of a failed or killed attempt (`spade run` without `--rerun`): the root of the
-- previous try's tree. Tasks instantiated in the new tree look their full name up under it,
-- and one that succeeded there is inserted succeeded with its outputs instead of running.
-- NULL for a fresh attempt and after `--rerun`, which keeps nothing.
ALTER TABLE attempts ADD COLUMN resume_root_task_id INTEGER REFERENCES tasks(id);
