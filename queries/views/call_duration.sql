-- call_duration: talk time of ended calls per day.
--
-- Grain: one row per (day, region, channel); day is the UTC day of the call_ended event.
-- Columns:
--   day              DATE           UTC day of call_ended
--   region           VARCHAR        media region, 'unknown' when absent
--   channel          VARCHAR        voice | video
--   calls_ended      BIGINT         distinct call_id with a call_ended event
--   avg_duration_s   DECIMAL(12,3)  mean duration_ms / 1000 over call_ended events with a duration
--   total_minutes    DECIMAL(18,2)  sum of duration_ms / 60000
--
-- Dialect notes: durations are averaged and summed as DOUBLE PRECISION, then CAST to DECIMAL:
-- Redshift's AVG of a BIGINT returns a (truncated) BIGINT, PostgreSQL's returns NUMERIC.
SELECT
    CAST(occurred_at AS DATE) AS day,
    COALESCE(region, 'unknown') AS region,
    channel,
    COUNT(DISTINCT call_id) AS calls_ended,
    CAST(AVG(CAST(duration_ms AS DOUBLE PRECISION)) / 1000 AS DECIMAL(12, 3)) AS avg_duration_s,
    CAST(SUM(CAST(duration_ms AS DOUBLE PRECISION)) / 60000 AS DECIMAL(18, 2)) AS total_minutes
FROM call_events
WHERE event_type = 'call_ended'
GROUP BY CAST(occurred_at AS DATE), COALESCE(region, 'unknown'), channel
ORDER BY day, region, channel
