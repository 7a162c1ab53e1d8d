-- 015: evaluations (issue 23): scale_teams from /v2/scale_teams?filter[campus_id]=..&range[updated_at]=..
-- (there is no per-campus scale_teams route), and the teams they are of with their members,
-- taken from each evaluation's `team` object (no call of their own). Declared in netops/catalog.py.
-- Hidden people (the API's "invisible") are NULL, never a fake id; every reference to a person is
-- soft (no FK): ~18 % of a campus's evaluations are pool evaluations naming people outside the
-- cursus. teams_users is keyed by the member's position in `team.users`, so a hidden member is a
-- row with a NULL user_id (a key cannot hold NULL); a team's rows are replaced whole when seen.
-- scale_teams.campus_id is the campus the listing was asked for (filter[campus_id]): the
-- evaluation object itself does not carry one.

CREATE TABLE teams (
    id                  integer PRIMARY KEY,
    name                text,
    project_id          integer,
    project_session_id  integer,
    final_mark          integer,
    status              text,
    validated           boolean,
    closed              boolean,
    locked              boolean,
    repo_url            text,
    repo_uuid           text,
    terminating_at      timestamptz,
    locked_at           timestamptz,
    closed_at           timestamptz,
    created_at          timestamptz,
    updated_at          timestamptz
);
CREATE INDEX teams_project_idx ON teams (project_id);

CREATE TABLE teams_users (
    team_id           integer NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    position          integer NOT NULL,
    user_id           integer,
    login             text,
    leader            boolean,
    validated         boolean,
    occurrence        integer,
    projects_user_id  integer,
    PRIMARY KEY (team_id, position)
);
CREATE INDEX teams_users_user_idx ON teams_users (user_id);

CREATE TABLE scale_teams (
    id               integer PRIMARY KEY,
    team_id          integer REFERENCES teams (id) ON DELETE CASCADE,
    scale_id         integer,
    corrector_id     integer,
    corrector_login  text,
    final_mark       integer,
    begin_at         timestamptz,
    filled_at        timestamptz,
    flag             jsonb,
    comment          text,
    feedback         text,
    truant_id        integer,
    feedbacks        jsonb,
    campus_id        integer,
    created_at       timestamptz,
    updated_at       timestamptz
);
CREATE INDEX scale_teams_team_idx ON scale_teams (team_id);
CREATE INDEX scale_teams_corrector_idx ON scale_teams (corrector_id);
CREATE INDEX scale_teams_campus_updated_idx ON scale_teams (campus_id, updated_at);

CREATE UNLOGGED TABLE delta_teams (LIKE teams);
CREATE UNLOGGED TABLE delta_teams_users (LIKE teams_users);
CREATE UNLOGGED TABLE delta_scale_teams (LIKE scale_teams);

ALTER TABLE netops.backlog_items DROP CONSTRAINT backlog_items_resource_check;
ALTER TABLE netops.backlog_items ADD CONSTRAINT backlog_items_resource_check
    CHECK (resource IN ('users', 'projects_users', 'achievements_users', 'coalitions_users', 'cursus_users',
                        'locations', 'scale_teams'));
