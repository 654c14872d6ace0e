-- failed_call_causes: why calls failed, per day.
--
-- Grain: one row per (day, hangup_cause); day is the UTC day of the call_failed event.
-- Columns:
--   day            DATE     UTC day of call_failed
--   hangup_cause   VARCHAR  cause reported on call_failed, 'unknown' when absent
--   failures       BIGINT   distinct call_id that failed with this cause
--
-- Dialect notes: portable as written.
SELECT
    CAST(occurred_at AS DATE) AS day,
    COALESCE(hangup_cause, 'unknown') AS hangup_cause,
    COUNT(DISTINCT call_id) AS failures
FROM call_events
WHERE event_type = 'call_failed'
GROUP BY CAST(occurred_at AS DATE), COALESCE(hangup_cause, 'unknown')
ORDER BY day, hangup_cause
