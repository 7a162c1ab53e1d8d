-- 004: `netops sync stable --if-changed` (netops/pipeline/probe.py). A phase whose no-change probe
-- found its resource unchanged is recorded with status 'unchanged' (not 'success'): nothing was
-- pulled, and the monitor's "last refreshed" / sync_age alert keep meaning "last pulled", because a
-- probe is blind to some changes that only a full pull (the nightly run) catches. `probe` holds what
-- the probe saw (e.g. 'count 350 = 350, max id 412 = 412'); NULL for phases that were pulled.

ALTER TABLE netops.sync_runs DROP CONSTRAINT sync_runs_status_check;
ALTER TABLE netops.sync_runs ADD CONSTRAINT sync_runs_status_check
    CHECK (status IN ('running', 'success', 'failed', 'unchanged'));
ALTER TABLE netops.sync_runs ADD COLUMN probe text;
