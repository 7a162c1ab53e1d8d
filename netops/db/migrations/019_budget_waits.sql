-- 019: who waits for the API budget, for status (issue 22). The limiter writes one row per waiting
-- limiter connection while a slot is further away than a few seconds (the hour's budget spent, a
-- 429's Retry-After) and deletes it when the wait ends. Keyed by the limiter connection's backend
-- pid: a row whose connection is gone (the process died) is stale, and readers skip it.
CREATE TABLE netops.api_waits (
    backend_pid   integer PRIMARY KEY,
    pid           integer NOT NULL,          -- the waiting netops process (on `host`)
    host          text NOT NULL,
    component     text NOT NULL,             -- detect, stable, backlog, reconcile, verify-links ...
    keys          text[] NOT NULL,
    reason        text NOT NULL,             -- 'hour' (the hourly budget is spent) | 'blocked' (a 429)
    used          integer,                   -- slots in the last hour on those keys when last checked
    budget        integer,                   -- their hourly budget, summed
    since         timestamptz NOT NULL DEFAULT now(),
    next_slot_at  timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- when a resource's first detect (the whole table: a backfill) completed: the loop rule calls the
-- calls of such a pass a known heavy job, not a loop
ALTER TABLE netops.backlog_marks ADD COLUMN first_filled_at timestamptz;
