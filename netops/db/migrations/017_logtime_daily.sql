-- 017: logtime_daily (user_id, campus_id, day, seconds), derived from locations (issue 23).
--
-- A view, not a table: an open session counts "up to now", so any stored figure for today is
-- stale the moment it is written, and a view can never disagree with the locations it reads
-- (no refresh to forget, nothing to keep in the locations transaction). What it costs is the
-- computation at read time; a person's rows read through locations_user_idx (014).
--
-- Days are the campus's own local days (campuses.time_zone, e.g. Asia/Seoul, America/Sao_Paulo):
-- a session is cut at every local midnight between its begin_at and its end_at (now while open),
-- DST days being 23 or 25 hours long. A campus not mirrored, or a time_zone PostgreSQL does not
-- know, falls back to UTC rather than failing the whole view. Overlapping sessions of one person
-- (two hosts at once) are summed, as the API's locations_stats does.
-- A campus's zone, or UTC when PostgreSQL does not know it (checked by use: a lookup in
-- pg_timezone_names would read the zone files on every query, ~40 ms).
CREATE FUNCTION netops.zone_or_utc(zone text) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM now() AT TIME ZONE zone;
    RETURN COALESCE(zone, 'UTC');
EXCEPTION WHEN OTHERS THEN
    RETURN 'UTC';
END $$;

CREATE VIEW logtime_daily AS
WITH zones AS MATERIALIZED (   -- once per campus, not once per session
    SELECT c.id, netops.zone_or_utc(c.time_zone) AS time_zone FROM campuses c
), s AS (
    SELECT l.user_id, l.campus_id, l.begin_at, COALESCE(l.end_at, now()) AS end_at,
           COALESCE(z.time_zone, 'UTC') AS tz
    FROM locations l LEFT JOIN zones z ON z.id = l.campus_id
    WHERE l.user_id IS NOT NULL AND l.begin_at IS NOT NULL
), pieces AS (
    SELECT s.user_id, s.campus_id, d.day::date AS day,
           GREATEST(s.begin_at, d.day AT TIME ZONE s.tz) AS lo,
           LEAST(s.end_at, (d.day + interval '1 day') AT TIME ZONE s.tz) AS hi
    FROM s, generate_series((s.begin_at AT TIME ZONE s.tz)::date::timestamp,
                            (s.end_at AT TIME ZONE s.tz)::date::timestamp, interval '1 day') AS d(day)
)
SELECT user_id, campus_id, day, sum(extract(epoch FROM hi - lo))::double precision AS seconds
FROM pieces WHERE hi > lo
GROUP BY user_id, campus_id, day;

COMMENT ON VIEW logtime_daily IS
    'Seconds logged per user, campus and local day (campus time zone), derived from locations; open sessions count up to now.';
-- (a person's sessions and a campus's open ones read through migration 014's indexes)

-- The people the backlog erased (past data_erasure_date), by id only, while they are not mirrored
-- as users: sessions carry their user's erasure date, evaluations do not (only {id, login}), so
-- without this list an evaluation of an erased person updated after the erasure would be loaded
-- again. An id alone is no personal data once the person's rows are gone; an entry stops counting
-- when the API serves the person again with a date not past (they are a mirrored user again).
CREATE TABLE netops.erased_people (
    user_id    integer PRIMARY KEY,
    erased_at  timestamptz NOT NULL DEFAULT now()
);
