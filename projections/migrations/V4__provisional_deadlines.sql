-- Provisional deadlines on the read side: a case whose running step's deadline was counted
-- past its calendar's published holidays (on the weekly hours alone) is marked in its row,
-- so the API can list such cases (`provisional=true`) and `/metrics` can count the open
-- ones per district (`wangge_sla_provisional_open_cases`).
--
-- The flag is already in each row's stored state (state->'sla'->>'provisional', written
-- since deadlines were recorded); this migration copies it into a column of its own, so
-- nothing has to be folded again.

ALTER TABLE cases ADD COLUMN provisional boolean NOT NULL DEFAULT false;

UPDATE cases
   SET provisional = true
 WHERE (state->'sla'->>'provisional')::boolean IS TRUE;

-- Few cases are provisional at any time (those whose limit reaches past the published
-- calendar): a partial index keeps the count and the list cheap at a million rows.
CREATE INDEX cases_provisional_open ON cases (district, list_at DESC, case_id DESC)
    WHERE provisional AND open;
