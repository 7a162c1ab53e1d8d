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
CREATE VIEW logtime_daily AS
WITH zones AS (
    SELECT c.id, c.time_zone FROM campuses c
    WHERE c.time_zone IN (SELECT name FROM pg_timezone_names)
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
