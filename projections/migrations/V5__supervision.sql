-- 督办 (issue 9, item 9): a case the district lets run past its own limit is referred to the
-- district's leadership (case.supervision_requested). The case list and the SLA board can
-- show supervised cases alone.
--
-- No case was supervised before this release (the event did not exist), so every existing
-- row is correctly `false` and nothing needs folding again.

ALTER TABLE cases ADD COLUMN supervised boolean NOT NULL DEFAULT false;
-- The supervised list, newest report first (a small share of all cases).
CREATE INDEX cases_supervised_list ON cases (list_at DESC, case_id DESC) WHERE supervised;

-- The board keeps supervised and other open cases of a holding cell apart, so that
-- `supervised=true` counts only the former and every row can say how many it has.
ALTER TABLE sla_board ADD COLUMN supervised boolean NOT NULL DEFAULT false;
-- The primary key by whatever name it has now (a rebuild swaps tables and renames indexes).
DO $$
DECLARE
    primary_key text;
BEGIN
    SELECT conname INTO primary_key FROM pg_constraint
    WHERE conrelid = 'sla_board'::regclass AND contype = 'p';
    EXECUTE format('ALTER TABLE sla_board DROP CONSTRAINT %I', primary_key);
END
$$;
ALTER TABLE sla_board ADD PRIMARY KEY (district, community, cell, tier, supervised);
