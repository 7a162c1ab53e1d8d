-- 007: a sync's end is always recorded. A run stopped by SIGINT/SIGTERM marks its unfinished
-- phase 'interrupted' (not 'failed': nothing went wrong with the data or the API, and its table was
-- left exactly as before), and so does the next sync for a run that was killed without a chance to
-- say so (kill -9, power loss). The monitor shows a 'running' row whose sync no longer holds the
-- sync advisory lock as interrupted at once (netops/monitor/facts.py), without waiting for that.
ALTER TABLE netops.sync_runs DROP CONSTRAINT IF EXISTS sync_runs_status_check;
ALTER TABLE netops.sync_runs ADD CONSTRAINT sync_runs_status_check
    CHECK (status IN ('running', 'success', 'failed', 'unchanged', 'interrupted'));
