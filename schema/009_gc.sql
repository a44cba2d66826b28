-- Retention (`spade gc`, store::gc). Deleting a task makes SQLite look for rows that point at
-- it through every foreign key; `attempts.root_task_id` and `attempts.resume_root_task_id`
-- had no index, so each deleted task scanned the whole attempts table. With these, gc of
-- 100,000 attempts is a seek per key instead of a scan per task. They are written once per
-- attempt (and per resume), never per task.
CREATE INDEX attempts_by_root_task ON attempts (root_task_id);
CREATE INDEX attempts_by_resume_root ON attempts (resume_root_task_id)
    WHERE resume_root_task_id IS NOT NULL;
