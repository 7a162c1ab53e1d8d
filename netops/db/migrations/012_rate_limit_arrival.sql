-- 012: count each slot where the API counted the call, not where it was claimed.
--
-- Why: the API counts a call when it ARRIVES, in a sliding one-second window; 006 counted the
-- moment its slot was claimed and relied on a fixed margin for the delay between the two. That
-- delay is not fixed: on a loaded box requests reached the API 0.13 s (load 4) to 0.45 s (load 12)
-- after their claim, so slots claimed 1.1 s apart arrived within one API second (429s) while the
-- same margin cost 10 % of the budget on an idle box.
--
-- Now every slot is also CLOSED when its answer's headers come back (netops.api_slots.done):
-- the client moves the slot's `at` to the latest moment the API can have counted it: when the
-- headers came back, less the fastest round trip any process has seen on the key
-- (api_keys.rtt_floor, once rtt_samples >= 10; before that nothing is subtracted) — the part of
-- every round trip that is the API answering, not the request waiting. The floor is shared and
-- only ever falls: one process whose first calls are all slow pages cannot make it large. The windows then see each call
-- where the API saw it, whatever the box's load did to that one call. A slot still in flight
-- (not closed yet) counts at its claim plus the key's learned spread (api_keys.spread_seconds:
-- the largest recent claim-to-arrival delay any process reported, decaying), so a late call
-- nobody has heard back from yet is assumed as late as recent ones were.
--
-- A 429 (the estimate was wrong after all) widens the key's window for every process
-- (api_keys.extra_margin, +50 ms per 429 up to 0.5 s, decaying by 0.5 % per closed call), besides
-- the Retry-After block 006 already shares.

ALTER TABLE netops.api_slots ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY;
ALTER TABLE netops.api_slots ADD COLUMN done boolean NOT NULL DEFAULT true;  -- rows from before 012 are closed
ALTER TABLE netops.api_keys ADD COLUMN spread_seconds double precision NOT NULL DEFAULT 0;
ALTER TABLE netops.api_keys ADD COLUMN extra_margin double precision NOT NULL DEFAULT 0;
ALTER TABLE netops.api_keys ADD COLUMN rtt_floor double precision;                 -- fastest round trip seen (s)
ALTER TABLE netops.api_keys ADD COLUMN rtt_samples integer NOT NULL DEFAULT 0;     -- answers folded into it

DROP FUNCTION netops.claim_api_slot(text, text, text, double precision, integer, double precision);

-- Claim one slot for key p_label if both windows (and any 429 block) allow it now.
-- Returns (state, wait_seconds, slot_id): 'claimed' (wait 0, slot_id to close it with), 'wait'
-- (ask again after wait_seconds), 'blocked' (a 429 told us to keep off until then), 'set_aside'
-- (this secret was refused). p_window_margin widens the one-second window by a little: it covers
-- what the closing estimate cannot see (the API's own clock and queue), not the whole spread.
CREATE FUNCTION netops.claim_api_slot(p_label text, p_client_id text, p_fingerprint text,
                                      p_per_second double precision, p_per_hour integer,
                                      p_window_margin double precision,
                                      OUT state text, OUT wait_seconds double precision,
                                      OUT slot_id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    k        netops.api_keys%ROWTYPE;
    now_     timestamptz;
    rate     double precision;
    burst    integer;
    per_hour integer;
    win      interval;
    spread   interval;
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
    win := make_interval(secs => 1.0 + p_window_margin + least(0.5, greatest(0.0, k.extra_margin)));
    spread := make_interval(secs => least(5.0, greatest(0.0, k.spread_seconds)));
    wait_seconds := 0;
    -- pacing: starts at least 1/rate apart (spreads a burst over the second)
    IF k.last_slot_at IS NOT NULL THEN
        wait_seconds := greatest(wait_seconds,
                                 extract(epoch FROM k.last_slot_at - now_) + 1.0 / rate);
    END IF;
    -- per-second window: at most `burst` slots in any (1 s + margin), each slot where the API
    -- counted it (closed) or may still count it (in flight: claim + spread)
    SELECT x.e INTO bound FROM (
        SELECT CASE WHEN s.done THEN s.at ELSE s.at + spread END AS e FROM netops.api_slots s
         WHERE s.key_label = p_label AND s.at > now_ - win - spread) x
     WHERE x.e > now_ - win
     ORDER BY x.e DESC OFFSET burst - 1 LIMIT 1;
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
    INSERT INTO netops.api_slots (key_label, at, done) VALUES (p_label, now_, false) RETURNING id INTO slot_id;
    UPDATE netops.api_keys SET last_slot_at = now_, slots_kept = k.slots_kept + 1 WHERE label = p_label;
    state := 'claimed'; wait_seconds := 0;
END $$;
