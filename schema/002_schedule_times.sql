-- The schedule's neighbours of an attempt's session time (`last_session_time`,
-- `next_session_time`), computed once when the attempt is created and never re-derived, so a
-- changed schedule cannot change the parameters of an attempt already under way.
ALTER TABLE attempts ADD COLUMN last_session_time TEXT;
ALTER TABLE attempts ADD COLUMN next_session_time TEXT;
