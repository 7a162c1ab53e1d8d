-- 013: wake waiting workers the moment work is queued (LISTEN/NOTIFY), instead of at their next poll.
--
-- Why: a `backlog run --loop` worker that finds the queue empty sleeps BACKLOG_POLL_INTERVAL
-- (30 s by default) before it looks again. On a box whose cron starts `backlog detect` and the
-- workers together, the workers found an empty queue, slept, and did all the loading after detect
-- had finished: the initial load of the live tables took detect's time PLUS the loading, on a
-- budget that had been idle for it (measured: 46 s against a floor of 30 s with 4 keys).
--
-- Now any statement that leaves items pending and due (detect's enqueue, a parent request, a
-- released batch, `backlog retry`, reconcile, hand-written SQL) sends one notification on the
-- channel `netops_backlog` when its transaction commits; waiting workers LISTEN on it
-- (netops/pipeline/backlog.py) and claim at once. PostgreSQL folds identical notifications of
-- one transaction into one, and a statement that only claims or finishes items sends none. The
-- poll interval stays as the fallback (a connection pooler without LISTEN, items coming due later).

CREATE FUNCTION netops.wake_backlog_workers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM changed WHERE state = 'pending' AND available_at <= now()) THEN
        PERFORM pg_notify('netops_backlog', '');
    END IF;
    RETURN NULL;
END $$;

-- transition tables allow one event per trigger: one trigger for INSERT (and the insert half of
-- ON CONFLICT DO UPDATE), one for UPDATE
CREATE TRIGGER backlog_items_wake_insert AFTER INSERT ON netops.backlog_items
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION netops.wake_backlog_workers();
CREATE TRIGGER backlog_items_wake_update AFTER UPDATE ON netops.backlog_items
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION netops.wake_backlog_workers();

-- A row held because its parent (its user) is not mirrored yet used to be retried on a timer
-- (1 s, 2 s, 3 s ... after each hold): loaded behind detect, the children of a user detected late
-- waited out their backoff after the user had landed, and the queue drained seconds after the
-- last page. Now each held item names the parent it waits for, and the transaction that loads
-- that parent makes its children due (netops.db.queue.wake_children) — the trigger above then
-- wakes a worker for them. The timer stays as the fallback (a parent that never comes).
ALTER TABLE netops.backlog_items ADD COLUMN parent_resource text;   -- set while held: the live resource ...
ALTER TABLE netops.backlog_items ADD COLUMN parent_id bigint;       -- ... and id of the parent it waits for
CREATE INDEX backlog_items_waiting_idx ON netops.backlog_items (parent_resource, parent_id)
    WHERE parent_id IS NOT NULL;

-- A worker that holds a row for a missing user asks for the user's fetch by id; while a detect
-- pass over users is walking, that user is usually on one of its next pages (with its payload, at
-- no extra call), so the request waits a little (netops.db.queue.PARENT_FETCH_DELAY) — but only
-- while such a pass is running: this column says so (set when a pass starts, cleared when its
-- mark moves or it fails; one left by a killed detect costs each fetch that short wait, no more).
ALTER TABLE netops.backlog_marks ADD COLUMN detect_started_at timestamptz;
