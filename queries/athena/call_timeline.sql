-- call_timeline: every event of one call, in event order.
--
-- Parameters: call_id; from_dt, to_dt (YYYY-MM-DD, inclusive: the days to search, which
-- prunes partitions; a call id alone does not say its day).
-- Columns: occurred_at, event_id, event_type, direction, channel, region, codec,
-- duration_ms, hangup_cause, quality_mos, dt, hour.
-- Dialect: the common subset of Athena (Trino) and DataFusion (etl_query::dialect).
SELECT
    occurred_at,
    event_id,
    event_type,
    direction,
    channel,
    region,
    codec,
    duration_ms,
    hangup_cause,
    quality_mos,
    dt,
    hour
FROM call_events
WHERE call_id = {{call_id}}
  AND dt BETWEEN {{from_dt}} AND {{to_dt}}
ORDER BY occurred_at, event_id
