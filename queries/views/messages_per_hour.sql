-- messages_per_hour: messages sent and failed per hour and platform.
--
-- Grain: one row per (hour_start, platform) with at least one message_sent or message_failed
-- event. A send attempt ends as either message_sent or message_failed, so
-- failure_rate = failed / (sent + failed).
-- Columns:
--   hour_start        TIMESTAMP     start of the UTC hour
--   platform          VARCHAR       ios | android | web
--   messages_sent     BIGINT        message_sent events
--   messages_failed   BIGINT        message_failed events
--   failure_rate      DECIMAL(6,4)  messages_failed / (messages_sent + messages_failed)
--
-- Dialect notes: SUM(CASE ...) instead of COUNT(*) FILTER (WHERE ...), which Redshift lacks;
-- the ratio goes through DOUBLE PRECISION, then CAST to DECIMAL.
SELECT
    date_trunc('hour', occurred_at) AS hour_start,
    platform,
    SUM(CASE WHEN event_type = 'message_sent' THEN 1 ELSE 0 END) AS messages_sent,
    SUM(CASE WHEN event_type = 'message_failed' THEN 1 ELSE 0 END) AS messages_failed,
    CAST(CAST(SUM(CASE WHEN event_type = 'message_failed' THEN 1 ELSE 0 END) AS DOUBLE PRECISION)
         / NULLIF(COUNT(*), 0) AS DECIMAL(6, 4)) AS failure_rate
FROM app_events
WHERE event_type IN ('message_sent', 'message_failed')
GROUP BY date_trunc('hour', occurred_at), platform
ORDER BY hour_start, platform
