-- 006: one API budget per application key, shared by every process and every box on this database
-- (netops/api/limiter.py, netops/db/ratelimit.py). Each call claims a slot in netops.api_slots
-- BEFORE it is sent, through netops.claim_api_slot(), which holds the key's row lock for the few
-- statements it runs: two claimers of one key are serialised, so no window ever holds more slots
-- than its limit, whatever the number of processes. Times are the DATABASE's clock
-- (clock_timestamp()), so several boxes agree on the windows whatever their own clocks say.

CREATE TABLE netops.api_keys (
    label                 text PRIMARY KEY,            -- the key's name in the config ('default', ...)
    client_id             text NOT NULL,               -- the application UID (public, not a secret)
    header_per_second     integer,                     -- X-Secondly-RateLimit-Limit last seen (NULL: never)
    header_per_hour       integer,                     -- X-Hourly-RateLimit-Limit last seen
    last_slot_at          timestamptz,                 -- the newest slot (pacing: 1/limit apart)
    slots_kept            integer NOT NULL DEFAULT 0,  -- rows of this key in api_slots (all < 1 h old)
    blocked_until         timestamptz,                 -- after a 429: nobody calls before this
    blocked_reason        text,
    set_aside_at          timestamptz,                 -- its secret was refused (POST /oauth/token 401)
    set_aside_reason      text,
    set_aside_fingerprint text,                        -- which secret (sha256 prefix): a new one is tried
    updated_at            timestamptz NOT NULL DEFAULT now()
);

-- One row per claimed call of the last hour (older rows are pruned by the claims themselves).
CREATE TABLE netops.api_slots (
    key_label  text NOT NULL,
    at         timestamptz NOT NULL
);
CREATE INDEX api_slots_key_at_idx ON netops.api_slots (key_label, at);

-- Which key each recorded call used (NULL for calls recorded before 006).
ALTER TABLE netops.api_calls ADD COLUMN key_label text;

-- Claim one slot for key p_label if both windows (and any 429 block) allow it now.
-- Returns (state, wait_seconds): 'claimed' (wait 0), 'wait' (ask again after wait_seconds),
-- 'blocked' (a 429 told us to keep off until then), 'set_aside' (this secret was refused).
-- p_window_margin widens the one-second window: a slot decided here reaches the API a few ms
-- later, and not always the same few; the margin absorbs that spread (see limiter.py).
CREATE FUNCTION netops.claim_api_slot(p_label text, p_client_id text, p_fingerprint text,
                                      p_per_second double precision, p_per_hour integer,
                                      p_window_margin double precision,
                                      OUT state text, OUT wait_seconds double precision)
LANGUAGE plpgsql AS $$
DECLARE
    k        netops.api_keys%ROWTYPE;
    now_     timestamptz;
    rate     double precision;
    burst    integer;
    per_hour integer;
    win      interval;
    pruned   integer;
    bound    timestamptz;
BEGIN
    SELECT * INTO k FROM netops.api_keys WHERE label = p_label FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO netops.api_keys (label, client_id) VALUES (p_label, p_client_id)
            ON CONFLICT (label) DO NOTHING;
        SELECT * INTO k FROM netops.api_keys WHERE label = p_label FOR UPDATE;
    END IF;
    IF k.set_aside_fingerprint IS NOT NULL THEN
        IF k.set_aside_fingerprint = p_fingerprint THEN
            state := 'set_aside'; wait_seconds := NULL; RETURN;
        END IF;
        -- the secret was changed since it was refused: give the key another chance
        UPDATE netops.api_keys SET set_aside_at = NULL, set_aside_reason = NULL,
               set_aside_fingerprint = NULL, updated_at = now() WHERE label = p_label;
    END IF;
    now_ := clock_timestamp();  -- read after the lock: the moment this slot is decided
    IF k.blocked_until IS NOT NULL AND k.blocked_until > now_ THEN
        state := 'blocked'; wait_seconds := extract(epoch FROM k.blocked_until - now_); RETURN;
    END IF;
    -- the API's own limits when it sent them, the configured budget being the ceiling
    rate := least(p_per_second, coalesce(k.header_per_second, p_per_second));
    burst := greatest(1, floor(rate)::integer);
    per_hour := least(p_per_hour, coalesce(k.header_per_hour, p_per_hour));
    win := make_interval(secs => 1.0 + p_window_margin);
    wait_seconds := 0;
    -- pacing: starts at least 1/rate apart (spreads a burst over the second)
    IF k.last_slot_at IS NOT NULL THEN
        wait_seconds := greatest(wait_seconds,
                                 extract(epoch FROM k.last_slot_at - now_) + 1.0 / rate);
    END IF;
    -- per-second window: at most `burst` slots in any (1 s + margin)
    SELECT s.at INTO bound FROM netops.api_slots s
     WHERE s.key_label = p_label AND s.at > now_ - win
     ORDER BY s.at DESC OFFSET burst - 1 LIMIT 1;
    IF FOUND THEN
        wait_seconds := greatest(wait_seconds, extract(epoch FROM bound + win - now_));
    END IF;
    -- per-hour window (sliding): prune what left it, then look only when it can be full
    DELETE FROM netops.api_slots s WHERE s.key_label = p_label AND s.at <= now_ - interval '1 hour';
    GET DIAGNOSTICS pruned = ROW_COUNT;
    k.slots_kept := greatest(0, k.slots_kept - pruned);
    IF k.slots_kept >= per_hour THEN
        SELECT s.at INTO bound FROM netops.api_slots s
         WHERE s.key_label = p_label
         ORDER BY s.at DESC OFFSET per_hour - 1 LIMIT 1;
        IF FOUND THEN
            wait_seconds := greatest(wait_seconds,
                                     extract(epoch FROM bound + interval '1 hour' + win - now_ - interval '1 second'));
        END IF;
    END IF;
    IF wait_seconds > 0 THEN
        UPDATE netops.api_keys SET slots_kept = k.slots_kept WHERE label = p_label AND pruned > 0;
        state := 'wait'; RETURN;
    END IF;
    INSERT INTO netops.api_slots (key_label, at) VALUES (p_label, now_);
    UPDATE netops.api_keys SET last_slot_at = now_, slots_kept = k.slots_kept + 1 WHERE label = p_label;
    state := 'claimed'; wait_seconds := 0;
END $$;

-- Before 006 the hour window was read from netops.api_calls: carry the last hour's calls over
-- to the default key, so a deploy in the middle of a busy hour does not start from an empty window.
INSERT INTO netops.api_slots (key_label, at)
    SELECT 'default', at FROM netops.api_calls
     WHERE at > now() - interval '1 hour' AND status IS DISTINCT FROM 429;
INSERT INTO netops.api_keys (label, client_id, slots_kept, last_slot_at)
    SELECT 'default', '', count(*), max(at) FROM netops.api_slots HAVING count(*) > 0;
