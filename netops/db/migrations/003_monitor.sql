-- 003: observability state. Alert state is kept in the database (not a file) so that every host
-- and every cron run sees the same state, and a webhook goes out once per change, not per run.
-- Data-quality results are stored so that status/metrics/alerts (which must be fast) can report
-- the last `netops check` without re-scanning millions of rows themselves.

CREATE TABLE netops.alert_state (
    name                  text PRIMARY KEY,            -- e.g. 'api_429'
    state                 text NOT NULL DEFAULT 'ok'
                          CHECK (state IN ('ok', 'firing', 'resolved')),
    value                 double precision,            -- last evaluated value (NULL: unknown)
    threshold             double precision,
    message               text,
    since                 timestamptz NOT NULL DEFAULT now(),  -- when the current state began
    last_checked_at       timestamptz NOT NULL DEFAULT now(),
    notified_state        text,                        -- last state POSTed to the webhook
    notified_at           timestamptz,
    notify_error          text                         -- last webhook failure, retried next run
);

CREATE TABLE netops.quality_runs (
    id            bigserial PRIMARY KEY,
    checked_at    timestamptz NOT NULL DEFAULT now(),
    duration_ms   integer NOT NULL,
    violations    integer NOT NULL,                    -- rows breaking an invariant
    info          integer NOT NULL,                    -- expected dangling references, counted
    result        jsonb NOT NULL                       -- the full `netops check --json` document
);
CREATE INDEX quality_runs_checked_idx ON netops.quality_runs (checked_at DESC);
