-- 011: what the monitor keeps so its exports stay cheap and its graphs have a history.
--
-- 1. Running totals of API calls. `netops_api_calls_total` used to be a count(*) over ALL of
--    netops.api_calls on every export (every minute), a cost that grew without bound, and
--    netops.api_calls could never be pruned without making that counter go down. The totals are
--    kept by a statement-level trigger, in the same transaction as the rows they count (every
--    writer -- the recorder, a token POST, a test -- is counted, with no change to any writer),
--    so the counter stays monotonic when old rows are deleted (`netops metrics history` prunes
--    netops.api_calls to its retention) and an export reads a few dozen rows.
-- 2. Per-minute samples of what no bookkeeping table remembers (the backlog's depth, rows per
--    mirrored table), written by `netops metrics history`, pruned to a short retention.

CREATE TABLE netops.api_call_totals (
    endpoint   text   NOT NULL,
    code       text   NOT NULL,       -- HTTP status as text; 'none' = no answer
    calls      bigint NOT NULL,
    PRIMARY KEY (endpoint, code)
);

-- what was recorded before the totals existed
INSERT INTO netops.api_call_totals (endpoint, code, calls)
SELECT endpoint, coalesce(status::text, 'none'), count(*) FROM netops.api_calls GROUP BY 1, 2;

CREATE FUNCTION netops.count_api_calls() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- ORDER BY: concurrent flushes lock the total rows in one order, so they cannot deadlock
    INSERT INTO netops.api_call_totals AS t (endpoint, code, calls)
    SELECT endpoint, coalesce(status::text, 'none'), count(*) FROM new_calls GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (endpoint, code) DO UPDATE SET calls = t.calls + excluded.calls;
    RETURN NULL;
END $$;

CREATE TRIGGER api_calls_totals AFTER INSERT ON netops.api_calls
    REFERENCING NEW TABLE AS new_calls FOR EACH STATEMENT EXECUTE FUNCTION netops.count_api_calls();

CREATE TABLE netops.monitor_samples (
    at                 timestamptz PRIMARY KEY DEFAULT now(),
    backlog_pending    integer,     -- NULL: the backlog is not installed
    backlog_processing integer,
    backlog_failed     integer,
    table_rows         jsonb NOT NULL DEFAULT '{}'   -- mirrored table -> rows (estimate for big ones)
);
