-- 014: locations, a campus-scoped live resource (issue 23): who was logged in where, from
-- /v2/campus/:id/locations for the campuses in scope. Declared in netops/catalog.py
-- (CampusWindow): the API gives no updated_at, so rows are found by a begin_at window with a
-- lookback, and open sessions (end_at NULL) are re-checked with filter[active]=true until they
-- close or disappear (docs/api.md). user_id and campus_id are soft references (no FK): sessions
-- name pool candidates and staff netops does not mirror. `primary` keeps the API's name (quote it
-- in SQL: it is a reserved word).
-- The staging twin's NOT NULL relaxation is applied by the migration runner after every
-- migration (netops/db/migrate.py), so it is not repeated here.

CREATE TABLE locations (
    id         integer PRIMARY KEY,
    user_id    integer,
    login      text,
    campus_id  integer,
    host       text,
    begin_at   timestamptz,
    end_at     timestamptz,
    "primary"  boolean
);
CREATE INDEX locations_user_idx ON locations (user_id, begin_at);
CREATE INDEX locations_campus_begin_idx ON locations (campus_id, begin_at);
-- the open sessions, re-checked on every pass and watched for their age
CREATE INDEX locations_open_idx ON locations (campus_id, begin_at) WHERE end_at IS NULL;

CREATE UNLOGGED TABLE delta_locations (LIKE locations);

-- the queue accepts the new resource
ALTER TABLE netops.backlog_items DROP CONSTRAINT backlog_items_resource_check;
ALTER TABLE netops.backlog_items ADD CONSTRAINT backlog_items_resource_check
    CHECK (resource IN ('users', 'projects_users', 'achievements_users', 'coalitions_users', 'cursus_users',
                        'locations'));
