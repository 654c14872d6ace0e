-- answer_seizure_ratio: share of call attempts that were answered (ASR), per day.
--
-- Grain: one row per (day, region, channel); day is the UTC day the call started.
-- A call counts once, on the day of its call_started event, whenever it was answered.
-- Columns:
--   day        DATE          UTC day of call_started
--   region     VARCHAR       media region, 'unknown' when absent
--   channel    VARCHAR       voice | video
--   attempts   BIGINT        calls started
--   answered   BIGINT        of those, calls with a call_answered event
--   asr        DECIMAL(6,4)  answered / attempts, 0.0000 to 1.0000 (NULL never: attempts >= 1)
--
-- Depends on: call_outcomes.
-- Dialect notes: SUM of a BIGINT is NUMERIC in PostgreSQL, hence the CAST back to BIGINT.
-- The ratio goes through DOUBLE PRECISION and is then CAST to DECIMAL (which rounds half away
-- from zero in all three engines): Redshift and PostgreSQL divide BIGINTs as integers, and
-- their DECIMAL division scale rules differ.
SELECT
    day,
    region,
    channel,
    COUNT(*) AS attempts,
    CAST(SUM(answered) AS BIGINT) AS answered,
    CAST(CAST(SUM(answered) AS DOUBLE PRECISION) / NULLIF(COUNT(*), 0) AS DECIMAL(6, 4)) AS asr
FROM call_outcomes
GROUP BY day, region, channel
ORDER BY day, region, channel
