-- The web UI's sessions list filtered by status: attempts of one state in id order, so a page
-- is a seek whether that state is common or absent (without it, a filter matching nothing
-- read every attempt of the store).
CREATE INDEX attempts_by_state_id ON attempts (state, id);
