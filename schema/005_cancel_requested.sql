-- A kill asked of an attempt another process drives: its owner sees the flag at its next
-- heartbeat and kills the attempt (the owner of what runs is the only one who can stop it).
ALTER TABLE attempts ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
