-- 016: events and exams of the campuses in scope (issue 23), from /v2/campus/:id/events and
-- /v2/campus/:id/exams with range[updated_at]. Declared in netops/catalog.py. An event's
-- campus_ids/cursus_ids and an exam's cursus/project ids are kept as the API's lists (jsonb);
-- an exam's ip_range is kept as the API sends it, a comma-separated string.

CREATE TABLE events (
    id                           integer PRIMARY KEY,
    name                         text,
    description                  text,
    location                     text,
    kind                         text,
    max_people                   integer,
    nbr_subscribers              integer,
    begin_at                     timestamptz,
    end_at                       timestamptz,
    campus_ids                   jsonb,
    cursus_ids                   jsonb,
    prohibition_of_cancellation  integer,
    created_at                   timestamptz,
    updated_at                   timestamptz
);
CREATE INDEX events_begin_idx ON events (begin_at);

CREATE TABLE exams (
    id               integer PRIMARY KEY,
    name             text,
    ip_range         text,
    location         text,
    max_people       integer,
    nbr_subscribers  integer,
    begin_at         timestamptz,
    end_at           timestamptz,
    campus_id        integer,
    cursus_ids       jsonb,
    project_ids      jsonb,
    created_at       timestamptz,
    updated_at       timestamptz
);
CREATE INDEX exams_campus_begin_idx ON exams (campus_id, begin_at);

CREATE UNLOGGED TABLE delta_events (LIKE events);
CREATE UNLOGGED TABLE delta_exams (LIKE exams);

ALTER TABLE netops.backlog_items DROP CONSTRAINT backlog_items_resource_check;
ALTER TABLE netops.backlog_items ADD CONSTRAINT backlog_items_resource_check
    CHECK (resource IN ('users', 'projects_users', 'achievements_users', 'coalitions_users', 'cursus_users',
                        'locations', 'scale_teams', 'events', 'exams'));
