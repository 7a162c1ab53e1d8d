-- 009: phases are identified by their table's name (issue 15). History used numbered names
-- ('07_campus_achievements'), so inserting a table in foreign-key order would have renamed every
-- later phase's history and Prometheus series. The order is now derived from the foreign keys
-- (netops/catalog.py) and the name is the table's: the old rows are renamed so that status,
-- metrics, the dashboard and `--if-changed`'s "last pull" history keep reading them.
UPDATE netops.sync_runs SET phase = regexp_replace(phase, '^[0-9]{2}_', '')
 WHERE phase ~ '^[0-9]{2}_';
COMMENT ON COLUMN netops.sync_runs.phase IS 'the phase''s table name, e.g. campuses (before 009: 02_campuses)';
