-- 001: the eight stable tables (public), their delta_* staging tables, and netops bookkeeping.
-- Foreign keys cascade so that pruning a parent removes its links in the same transaction.
-- Self-references (projects.parent_id, achievements.parent_id) and project_sessions.campus_id /
-- cursus_id stay plain columns: the API returns them pointing at rows outside the mirrored set
-- (inactive campuses, other cursus), and a FK would force us to drop real data.

CREATE SCHEMA IF NOT EXISTS netops;

CREATE TABLE cursus (
    id          integer PRIMARY KEY,
    name        text,
    slug        text,
    kind        text,
    created_at  timestamptz
);

CREATE TABLE campuses (
    id              integer PRIMARY KEY,
    name            text,
    time_zone       text,
    language_id     integer,
    language_name   text,
    users_count     integer,
    vogsphere_id    integer,
    country         text,
    address         text,
    zip             text,
    city            text,
    website         text,
    facebook        text,
    twitter         text,
    active          boolean,
    public          boolean,
    email_extension text
);

CREATE TABLE projects (
    id          integer PRIMARY KEY,
    name        text,
    slug        text,
    parent_id   integer,
    exam        boolean,
    git_id      integer,
    repository  text,
    difficulty  integer,
    created_at  timestamptz,
    updated_at  timestamptz
);

CREATE TABLE coalitions (
    id          integer PRIMARY KEY,
    name        text,
    slug        text,
    image_url   text,
    cover_url   text,
    color       text,
    score       integer,
    user_id     integer
);

CREATE TABLE achievements (
    id              integer PRIMARY KEY,
    name            text,
    description     text,
    tier            text,
    kind            text,
    visible         boolean,
    image           text,
    nbr_of_success  integer,
    users_url       text,
    parent_id       integer,
    title           text
);

CREATE TABLE campus_projects (
    campus_id   integer NOT NULL REFERENCES campuses (id) ON DELETE CASCADE,
    project_id  integer NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    PRIMARY KEY (campus_id, project_id)
);
CREATE INDEX campus_projects_project_idx ON campus_projects (project_id);

CREATE TABLE campus_achievements (
    campus_id       integer NOT NULL REFERENCES campuses (id) ON DELETE CASCADE,
    achievement_id  integer NOT NULL REFERENCES achievements (id) ON DELETE CASCADE,
    PRIMARY KEY (campus_id, achievement_id)
);
CREATE INDEX campus_achievements_achievement_idx ON campus_achievements (achievement_id);

CREATE TABLE project_sessions (
    id                integer PRIMARY KEY,
    project_id        integer NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    campus_id         integer,
    cursus_id         integer,
    begin_at          timestamptz,
    end_at            timestamptz,
    solo              boolean,
    estimate_time     text,
    difficulty        integer,
    duration_days     integer,
    max_people        integer,
    is_subscriptable  boolean,
    created_at        timestamptz,
    updated_at        timestamptz
);
CREATE INDEX project_sessions_project_idx ON project_sessions (project_id);

-- Staging: same columns, no constraints, UNLOGGED (refetchable, so WAL would be wasted work).
CREATE UNLOGGED TABLE delta_cursus              (LIKE cursus);
CREATE UNLOGGED TABLE delta_campuses            (LIKE campuses);
CREATE UNLOGGED TABLE delta_projects            (LIKE projects);
CREATE UNLOGGED TABLE delta_coalitions          (LIKE coalitions);
CREATE UNLOGGED TABLE delta_achievements        (LIKE achievements);
CREATE UNLOGGED TABLE delta_campus_projects     (LIKE campus_projects);
CREATE UNLOGGED TABLE delta_campus_achievements (LIKE campus_achievements);
CREATE UNLOGGED TABLE delta_project_sessions    (LIKE project_sessions);

-- LIKE copies NOT NULL; staging must accept a NULL key so the loader can count and drop it.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.table_name, c.column_name FROM information_schema.columns c
             WHERE c.table_schema = 'public' AND c.table_name LIKE 'delta\_%' AND c.is_nullable = 'NO'
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN %I DROP NOT NULL', r.table_name, r.column_name);
    END LOOP;
END $$;

-- Bookkeeping: written on their own autocommit connection, so they survive a rolled-back phase
-- and are visible to status/metrics/dashboard while a sync runs.
CREATE TABLE netops.sync_runs (
    id              bigserial PRIMARY KEY,
    run_id          uuid NOT NULL,               -- groups the phases of one `netops sync`
    phase           text NOT NULL,               -- e.g. '02_campuses'
    table_name      text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    status          text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'success', 'failed')),
    pages_done      integer NOT NULL DEFAULT 0,
    pages_total     integer,                     -- known after the first page (X-Total)
    rows_fetched    integer NOT NULL DEFAULT 0,
    rows_inserted   integer NOT NULL DEFAULT 0,
    rows_updated    integer NOT NULL DEFAULT 0,
    rows_deleted    integer NOT NULL DEFAULT 0,
    rows_skipped    integer NOT NULL DEFAULT 0,  -- link rows whose parent is not mirrored
    api_calls       integer NOT NULL DEFAULT 0,
    error           text
);
CREATE INDEX sync_runs_phase_started_idx ON netops.sync_runs (phase, started_at DESC);
CREATE INDEX sync_runs_run_idx ON netops.sync_runs (run_id);

CREATE TABLE netops.api_calls (
    id                    bigserial PRIMARY KEY,
    at                    timestamptz NOT NULL DEFAULT now(),
    component             text NOT NULL DEFAULT 'sync',
    method                text NOT NULL DEFAULT 'GET',
    endpoint              text NOT NULL,         -- path without query string or ids' values
    status                integer,               -- NULL: no answer (timeout, reset)
    duration_ms           integer,
    attempt               integer NOT NULL DEFAULT 1,
    secondly_remaining    integer,
    hourly_remaining      integer,
    error                 text
);
CREATE INDEX api_calls_at_idx ON netops.api_calls (at);
