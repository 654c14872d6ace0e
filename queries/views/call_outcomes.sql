-- call_outcomes: one row per call that has a call_started event, with how it went.
-- Base view for answer_seizure_ratio; also a drill-down table for QuickSight.
--
-- Grain: one row per call_id (calls without a call_started event are left out).
-- Columns:
--   call_id       VARCHAR    id shared by every event of the call
--   started_at    TIMESTAMP  earliest call_started time (UTC)
--   day           DATE       UTC day of started_at
--   region        VARCHAR    media region of the call_started event, 'unknown' when absent
--   channel       VARCHAR    voice | video (from call_started)
--   direction     VARCHAR    inbound | outbound (from call_started)
--   answered      BIGINT     1 when the call has a call_answered event, else 0
--   failed        BIGINT     1 when the call has a call_failed event, else 0
--   ended         BIGINT     1 when the call has a call_ended event, else 0
--   duration_ms   BIGINT     talk time from call_ended; NULL when not ended
--   hangup_cause  VARCHAR    cause from call_ended / call_failed; NULL when neither happened
--
-- Dialect notes: portable as written (DataFusion, PostgreSQL 15, Redshift). 0/1 flags are
-- BIGINT, not BOOLEAN, because QuickSight sums them. Duplicate events are harmless: every
-- column is a MIN/MAX per call.
SELECT
    call_id,
    MIN(CASE WHEN event_type = 'call_started' THEN occurred_at END) AS started_at,
    CAST(MIN(CASE WHEN event_type = 'call_started' THEN occurred_at END) AS DATE) AS day,
    MIN(CASE WHEN event_type = 'call_started' THEN COALESCE(region, 'unknown') END) AS region,
    MIN(CASE WHEN event_type = 'call_started' THEN channel END) AS channel,
    MIN(CASE WHEN event_type = 'call_started' THEN direction END) AS direction,
    CAST(MAX(CASE WHEN event_type = 'call_answered' THEN 1 ELSE 0 END) AS BIGINT) AS answered,
    CAST(MAX(CASE WHEN event_type = 'call_failed' THEN 1 ELSE 0 END) AS BIGINT) AS failed,
    CAST(MAX(CASE WHEN event_type = 'call_ended' THEN 1 ELSE 0 END) AS BIGINT) AS ended,
    MAX(CASE WHEN event_type = 'call_ended' THEN duration_ms END) AS duration_ms,
    MAX(CASE WHEN event_type IN ('call_ended', 'call_failed') THEN hangup_cause END) AS hangup_cause
FROM call_events
GROUP BY call_id
HAVING MIN(CASE WHEN event_type = 'call_started' THEN occurred_at END) IS NOT NULL
ORDER BY started_at, call_id
