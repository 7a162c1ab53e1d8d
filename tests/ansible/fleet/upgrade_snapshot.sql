-- run.sh step 11 (the upgrade): run on the box BEFORE the new release is deployed, as postgres in
-- the netops database (psql -A -t). It prints one query per line; run.sh keeps them and runs the
-- same queries before and after the upgrade, and the two outputs must be equal. So only what the
-- old release has is compared (tables and columns a new release adds are not in the queries),
-- with the old release's column list, and each query stands for one promise:
--   every mirror table (public, staging delta_* tables aside): row count + md5 of its rows, sorted
--   netops.sync_runs / netops.backlog_items: the rows that existed before are all still there
--   netops.backlog_marks: each resource's cursor still there, not moved backwards
--   netops.alert_state: each alert's row still there
-- Jobs that run in between (cron stays on during the deploy) can only rewrite a mirror row with the
-- values it already has: the simulator changes nothing during step 11.
SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(r, E''\n'' ORDER BY r), '''')) '
              'FROM (SELECT ROW(%s)::text AS r FROM public.%I) s;',
              c.table_name, string_agg(quote_ident(c.column_name), ', ' ORDER BY c.ordinal_position), c.table_name)
FROM information_schema.columns c
JOIN information_schema.tables t USING (table_schema, table_name)
WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' AND c.table_name NOT LIKE 'delta\_%'
GROUP BY c.table_name
ORDER BY c.table_name;

SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(concat_ws(%L, id, phase, started_at), %L ORDER BY id), %L)) '
              'FROM netops.sync_runs WHERE id <= %s;',
              'netops.sync_runs (rows kept)', ',', ';', '', coalesce(max(id), 0))
FROM netops.sync_runs;

SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(concat_ws(%L, id, resource, entity_id), %L ORDER BY id), %L)) '
              'FROM netops.backlog_items WHERE id <= %s;',
              'netops.backlog_items (rows kept)', ',', ';', '', coalesce(max(id), 0))
FROM netops.backlog_items;

SELECT format('SELECT %L, count(*), coalesce(bool_and(high_water >= %L::timestamptz), %L) '
              'FROM netops.backlog_marks WHERE resource = %L;',
              'netops.backlog_marks cursor of ' || resource, high_water, high_water IS NULL, resource)
FROM netops.backlog_marks
ORDER BY resource;

SELECT format('SELECT %L, count(*) FROM netops.alert_state WHERE name = %L;', 'netops.alert_state ' || name, name)
FROM netops.alert_state
ORDER BY name;
