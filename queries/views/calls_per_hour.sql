-- calls_per_hour: call lifecycle volume per hour.
--
-- Grain: one row per (hour_start, region, channel, direction) that had a call_started,
-- call_answered or call_failed event. Each event counts in the hour it happened, so a call
-- started at 10:59 and answered at 11:00 counts as started in 10:00 and answered in 11:00.
-- Columns:
--   hour_start       TIMESTAMP  start of the UTC hour
--   region           VARCHAR    media region, 'unknown' when absent
--   channel          VARCHAR    voice | video
--   direction        VARCHAR    inbound | outbound
--   calls_started    BIGINT     distinct call_id with a call_started event in the hour
--   calls_answered   BIGINT     distinct call_id with a call_answered event in the hour
--   calls_failed     BIGINT     distinct call_id with a call_failed event in the hour
--
-- Dialect notes: portable as written. COUNT(DISTINCT CASE ... END) instead of
-- COUNT(DISTINCT ...) FILTER (WHERE ...), which Redshift lacks.
SELECT
    date_trunc('hour', occurred_at) AS hour_start,
    COALESCE(region, 'unknown') AS region,
    channel,
    direction,
    COUNT(DISTINCT CASE WHEN event_type = 'call_started' THEN call_id END) AS calls_started,
    COUNT(DISTINCT CASE WHEN event_type = 'call_answered' THEN call_id END) AS calls_answered,
    COUNT(DISTINCT CASE WHEN event_type = 'call_failed' THEN call_id END) AS calls_failed
FROM call_events
WHERE event_type IN ('call_started', 'call_answered', 'call_failed')
GROUP BY date_trunc('hour', occurred_at), COALESCE(region, 'unknown'), channel, direction
ORDER BY hour_start, region, channel, direction
