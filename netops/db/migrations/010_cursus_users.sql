-- 010: cursus_users, a live resource of phase 09 (issue 15): each user's level, grade and
-- blackhole date in the cursus, from /v2/cursus/21/cursus_users (nested `user` and `cursus`).
-- Declared in netops/catalog.py; `level` is computed by the server and changes without moving
-- updated_at (docs/api.md), so `netops backlog reconcile` is what keeps it right.
-- The staging twin's NOT NULL relaxation is applied by the migration runner after every
-- migration (netops/db/migrate.py), so it is not repeated here.

CREATE TABLE cursus_users (
    id             integer PRIMARY KEY,
    user_id        integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    cursus_id      integer NOT NULL REFERENCES cursus (id) ON DELETE CASCADE,
    level          double precision,
    grade          text,
    begin_at       timestamptz,
    end_at         timestamptz,
    blackholed_at  timestamptz,
    created_at     timestamptz,
    updated_at     timestamptz
);
CREATE INDEX cursus_users_user_idx ON cursus_users (user_id);
CREATE INDEX cursus_users_cursus_idx ON cursus_users (cursus_id);

CREATE UNLOGGED TABLE delta_cursus_users (LIKE cursus_users);

-- the queue accepts the new resource
ALTER TABLE netops.backlog_items DROP CONSTRAINT backlog_items_resource_check;
ALTER TABLE netops.backlog_items ADD CONSTRAINT backlog_items_resource_check
    CHECK (resource IN ('users', 'projects_users', 'achievements_users', 'coalitions_users', 'cursus_users'));
