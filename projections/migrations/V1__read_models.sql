-- The read models of Wangge's four projections, and their checkpoints.
--
-- Every table belongs to one projection and is written only by that projection's runner,
-- in the transaction that also moves its checkpoint. Codes, names and ids are compared
-- byte for byte (COLLATE "C"): the order the folds and the memory store use, and cheaper
-- indexes. Per-case states are the folds' own values as JSONB, read back by the runner.

CREATE TABLE projection_checkpoints (
    projection  text COLLATE "C" PRIMARY KEY,
    -- The log position (JetStream stream sequence) of the last commit folded; 0: none yet.
    position    bigint NOT NULL DEFAULT 0 CHECK (position >= 0),
    -- When the last event of that commit was recorded.
    recorded_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projection_checkpoints (projection)
VALUES ('cases'), ('audit'), ('indicators'), ('patrols');

-- ---------------------------------------------------------------------------------------
-- cases: every case's current state, and the SLA board
-- ---------------------------------------------------------------------------------------

CREATE TABLE cases (
    case_id     uuid PRIMARY KEY,
    reported_at timestamptz,
    -- The list order: reported_at, or the epoch for a case without a report.
    list_at     timestamptz NOT NULL,
    district    text COLLATE "C" NOT NULL,
    community   text COLLATE "C" NOT NULL,
    building    text COLLATE "C" NOT NULL,
    -- The cell that holds the case now (any tier).
    cell        text COLLATE "C" NOT NULL,
    tier        text COLLATE "C",
    status      text COLLATE "C" NOT NULL,
    open        boolean NOT NULL,
    -- The accepted category, else the reported one.
    category    text COLLATE "C" NOT NULL,
    intake      text COLLATE "C",
    assignee    text COLLATE "C",
    -- The SLA clock of the running step; light is NULL for a case no longer open.
    light       text COLLATE "C",
    step        text COLLATE "C",
    deadline    timestamptz,
    -- The projection's state of the case (summary, SLA clock, SLA facts).
    state       jsonb NOT NULL
);
CREATE INDEX cases_list ON cases (list_at DESC, case_id DESC);
CREATE INDEX cases_open_list ON cases (list_at DESC, case_id DESC) WHERE open;
CREATE INDEX cases_district_list ON cases (district, list_at DESC, case_id DESC);
CREATE INDEX cases_community_list ON cases (community, list_at DESC, case_id DESC);
CREATE INDEX cases_cell_list ON cases (cell, list_at DESC, case_id DESC);
CREATE INDEX cases_status_list ON cases (status, list_at DESC, case_id DESC);
CREATE INDEX cases_category_list ON cases (category, list_at DESC, case_id DESC);
-- Workers' inboxes.
CREATE INDEX cases_inbox ON cases (assignee) WHERE open;
-- The overdue list, longest overdue first.
CREATE INDEX cases_overdue ON cases (deadline, case_id) WHERE light = 'red';

-- Open cases per holding cell and tier, by traffic light.
CREATE TABLE sla_board (
    district  text COLLATE "C" NOT NULL,
    -- The community of the holding cell; '' for a case held at the district.
    community text COLLATE "C" NOT NULL,
    cell      text COLLATE "C" NOT NULL,
    tier      text COLLATE "C" NOT NULL,
    green     bigint NOT NULL,
    yellow    bigint NOT NULL,
    red       bigint NOT NULL,
    PRIMARY KEY (district, community, cell, tier)
);

-- ---------------------------------------------------------------------------------------
-- audit: the hash-chained trail of every case
-- ---------------------------------------------------------------------------------------

CREATE TABLE audit_trail (
    case_id     uuid NOT NULL,
    sequence    bigint NOT NULL,
    event_id    uuid NOT NULL,
    event_type  text COLLATE "C" NOT NULL,
    actor_id    text COLLATE "C" NOT NULL,
    occurred_at timestamptz NOT NULL,
    -- The entry exactly as hashed (text, not jsonb: jsonb would reformat it).
    entry_json  text NOT NULL,
    prev_hash   text COLLATE "C" NOT NULL,
    hash        text COLLATE "C" NOT NULL,
    PRIMARY KEY (case_id, sequence)
);

-- The head of each case's chain, as the projection wrote it.
CREATE TABLE audit_heads (
    case_id  uuid PRIMARY KEY,
    sequence bigint NOT NULL,
    hash     text COLLATE "C" NOT NULL,
    -- The case summary the next event is compared with.
    summary  jsonb NOT NULL
);

-- ---------------------------------------------------------------------------------------
-- indicators: counters and duration histograms per day, cell and category
-- ---------------------------------------------------------------------------------------

CREATE TABLE indicator_cases (
    case_id uuid PRIMARY KEY,
    -- The projection's state of the case (summary, SLA facts, its contribution).
    state   jsonb NOT NULL
);

CREATE TABLE indicator_daily (
    day                   date NOT NULL,
    district              text COLLATE "C" NOT NULL,
    community             text COLLATE "C" NOT NULL,
    cell                  text COLLATE "C" NOT NULL,
    category              text COLLATE "C" NOT NULL,
    registered            bigint NOT NULL,
    closed                bigint NOT NULL,
    closed_on_time        bigint NOT NULL,
    handled               bigint NOT NULL,
    reworked              bigint NOT NULL,
    dispatched            bigint NOT NULL,
    responded_on_time     bigint NOT NULL,
    evaluated             bigint NOT NULL,
    resolved_for_resident bigint NOT NULL,
    satisfied             bigint NOT NULL,
    PRIMARY KEY (day, district, community, cell, category)
);

CREATE TABLE indicator_durations (
    day       date NOT NULL,
    district  text COLLATE "C" NOT NULL,
    community text COLLATE "C" NOT NULL,
    cell      text COLLATE "C" NOT NULL,
    category  text COLLATE "C" NOT NULL,
    metric    text COLLATE "C" NOT NULL,
    bucket    smallint NOT NULL,
    count     bigint NOT NULL,
    PRIMARY KEY (day, district, community, cell, category, metric, bucket)
);

-- ---------------------------------------------------------------------------------------
-- patrols: patrol findings per building cell and day
-- ---------------------------------------------------------------------------------------

CREATE TABLE patrol_coverage (
    cell          text COLLATE "C" NOT NULL,
    day           date NOT NULL,
    district      text COLLATE "C" NOT NULL,
    community     text COLLATE "C" NOT NULL,
    findings      bigint NOT NULL,
    fixed_on_spot bigint NOT NULL,
    first_at      timestamptz NOT NULL,
    last_at       timestamptz NOT NULL,
    last_worker   text COLLATE "C" NOT NULL,
    PRIMARY KEY (cell, day)
);
CREATE INDEX patrol_coverage_day ON patrol_coverage (day);
