-- top_hangup_causes: the ten most frequent causes of ended and failed calls.
--
-- Parameters: from_dt, to_dt (YYYY-MM-DD, inclusive; prunes partitions).
-- Columns: hangup_cause ('unknown' when absent), calls (distinct call_id ending with it),
-- failed (of those, call_failed events), ended (call_ended events).
-- Dialect: the common subset of Athena (Trino) and DataFusion (etl_query::dialect).
SELECT
    COALESCE(hangup_cause, 'unknown') AS hangup_cause,
    count(DISTINCT call_id) AS calls,
    sum(CASE WHEN event_type = 'call_failed' THEN 1 ELSE 0 END) AS failed,
    sum(CASE WHEN event_type = 'call_ended' THEN 1 ELSE 0 END) AS ended
FROM call_events
WHERE dt BETWEEN {{from_dt}} AND {{to_dt}}
  AND event_type IN ('call_ended', 'call_failed')
GROUP BY COALESCE(hangup_cause, 'unknown')
ORDER BY calls DESC, hangup_cause
LIMIT 10
