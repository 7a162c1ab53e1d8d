-- 002: phase 09 — the four live tables (public), their delta_* staging twins, and the durable
-- backlog queue (netops.backlog_items) with its per-resource high-water marks (netops.backlog_marks).
--
-- Foreign keys cascade: pruning a user (reconcile) removes its project/achievement/coalition links
-- in the same transaction. Live rows reference stable parents (projects, achievements, coalitions)
-- mirrored by `netops sync stable`; the worker never inserts a row whose parent is missing — it
-- holds the item (and, for a missing user, enqueues the user's fetch) instead of breaking a FK.

CREATE TABLE users (
    id                integer PRIMARY KEY,
    login             text,
    email             text,
    first_name        text,
    last_name         text,
    usual_full_name   text,
    displayname       text,
    kind              text,
    phone             text,
    url               text,
    image_url         text,
    active            boolean,
    alumni            boolean,
    staff             boolean,
    pool_month        text,
    pool_year         text,
    location          text,
    wallet            integer,
    correction_point  integer,
    alumnized_at      timestamptz,
    created_at        timestamptz,
    updated_at        timestamptz
);
CREATE INDEX users_updated_at_idx ON users (updated_at);

CREATE TABLE project_users (
    id           integer PRIMARY KEY,
    project_id   integer NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id      integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    cursus_ids   jsonb,
    status       text,
    final_mark   integer,
    validated    boolean,
    occurrence   integer,
    marked       boolean,
    marked_at    timestamptz,
    retriable_at timestamptz,
    created_at   timestamptz,
    updated_at   timestamptz
);
CREATE INDEX project_users_project_idx ON project_users (project_id);
CREATE INDEX project_users_user_idx ON project_users (user_id);

CREATE TABLE achievements_users (
    id              integer PRIMARY KEY,
    achievement_id  integer NOT NULL REFERENCES achievements (id) ON DELETE CASCADE,
    user_id         integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz,
    updated_at      timestamptz
);
CREATE INDEX achievements_users_achievement_idx ON achievements_users (achievement_id);
CREATE INDEX achievements_users_user_idx ON achievements_users (user_id);

CREATE TABLE coalitions_users (
    id            integer PRIMARY KEY,
    coalition_id  integer NOT NULL REFERENCES coalitions (id) ON DELETE CASCADE,
    user_id       integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    score         integer,
    rank          integer,
    created_at    timestamptz,
    updated_at    timestamptz
);
CREATE INDEX coalitions_users_coalition_idx ON coalitions_users (coalition_id);
CREATE INDEX coalitions_users_user_idx ON coalitions_users (user_id);

CREATE UNLOGGED TABLE delta_users              (LIKE users);
CREATE UNLOGGED TABLE delta_project_users      (LIKE project_users);
CREATE UNLOGGED TABLE delta_achievements_users (LIKE achievements_users);
CREATE UNLOGGED TABLE delta_coalitions_users   (LIKE coalitions_users);

-- The queue. One row per unit of work; a row is never deleted by the worker (only by `purge`), so
-- status can report history. At most one pending/processing item per (resource, entity_id): new
-- work for an entity already queued merges into that item (newer payload wins, `version` bumps so
-- a worker holding it re-queues instead of marking it done over unseen work).
CREATE TABLE netops.backlog_items (
    id                 bigserial PRIMARY KEY,
    resource           text NOT NULL
                       CHECK (resource IN ('users', 'projects_users', 'achievements_users', 'coalitions_users')),
    entity_id          bigint NOT NULL,
    action             text NOT NULL DEFAULT 'upsert' CHECK (action IN ('upsert', 'delete')),
    state              text NOT NULL DEFAULT 'pending'
                       CHECK (state IN ('pending', 'processing', 'done', 'failed')),
    attempts           integer NOT NULL DEFAULT 0,
    last_error         text,
    enqueued_at        timestamptz NOT NULL DEFAULT now(),
    available_at       timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    worker             text,
    payload            jsonb,             -- the row as the detector saw it; NULL = fetch it by id
    -- additions beyond the contract:
    source_updated_at  timestamptz,       -- payload's updated_at: an older payload never replaces a newer one
    version            integer NOT NULL DEFAULT 1,   -- bumped whenever new work merges in
    fetch_cost         double precision NOT NULL DEFAULT 0,  -- API calls spent to obtain the payload
    reason             text NOT NULL DEFAULT 'detect',       -- detect | parent | reconcile | manual
    deferrals          integer NOT NULL DEFAULT 0,           -- times held back for a missing parent
    outcome            text,                                 -- inserted | updated | stale | deleted | absent | held
    -- claim order: parents (users) before the rows that reference them
    priority           smallint GENERATED ALWAYS AS (CASE WHEN resource = 'users' THEN 0 ELSE 1 END) STORED
);
CREATE UNIQUE INDEX backlog_items_live_uq
    ON netops.backlog_items (resource, entity_id) WHERE state IN ('pending', 'processing');
CREATE INDEX backlog_items_claim_idx
    ON netops.backlog_items (priority, available_at, id) WHERE state = 'pending';
CREATE INDEX backlog_items_processing_idx
    ON netops.backlog_items (started_at) WHERE state = 'processing';
CREATE INDEX backlog_items_finished_idx ON netops.backlog_items (state, finished_at);

CREATE TABLE netops.backlog_marks (
    resource               text PRIMARY KEY,
    high_water             timestamptz,   -- greatest updated_at whose work is safely queued
    updated_at             timestamptz NOT NULL DEFAULT now(),
    -- additions beyond the contract:
    last_detect_at         timestamptz,
    last_detect_calls      integer,
    last_detect_rows       integer,
    reconcile_cursor       bigint,        -- last id reconciled in the current pass (NULL = next pass starts at 0)
    reconcile_started_at   timestamptz,   -- when the current pass began
    reconcile_finished_at  timestamptz    -- when the last complete pass ended
);
