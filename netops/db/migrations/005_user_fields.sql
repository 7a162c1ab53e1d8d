-- 005: every user field the API gives is kept (issue 11). usual_first_name (the name a student
-- goes by), the whole image object (link and the four sizes, all null for users without a picture)
-- as jsonb, and the two dates the school sets for the personal data: anonymize_date and
-- data_erasure_date (timestamptz: the API writes them with many offsets, negative ones common).
-- A user past data_erasure_date is data the school has promised to erase: the live sync deletes
-- such rows (their project/achievement/coalition links cascade) and never loads them again, and
-- `netops check` reports any still present (docs/backlog.md, "Erasure"). The index serves both.

ALTER TABLE users ADD COLUMN usual_first_name  text;
ALTER TABLE users ADD COLUMN image             jsonb;
ALTER TABLE users ADD COLUMN anonymize_date    timestamptz;
ALTER TABLE users ADD COLUMN data_erasure_date timestamptz;
CREATE INDEX users_data_erasure_date_idx ON users (data_erasure_date);

ALTER TABLE delta_users ADD COLUMN usual_first_name  text;
ALTER TABLE delta_users ADD COLUMN image             jsonb;
ALTER TABLE delta_users ADD COLUMN anonymize_date    timestamptz;
ALTER TABLE delta_users ADD COLUMN data_erasure_date timestamptz;
