-- user_sessions: one user's sessions in time order, with what happened in each.
--
-- Parameters: user_id; from_dt, to_dt (YYYY-MM-DD, inclusive; prunes partitions).
-- Columns: session_id, platform, started_at (first event), ended_at (last event), events,
-- messages_sent, messages_failed, first_event, last_event (event types).
-- Dialect: the common subset of Athena (Trino) and DataFusion (etl_query::dialect).
WITH events AS (
    SELECT
        session_id,
        platform,
        occurred_at,
        event_type,
        row_number() OVER (PARTITION BY session_id ORDER BY occurred_at, event_id) AS first_rank,
        row_number() OVER (PARTITION BY session_id ORDER BY occurred_at DESC, event_id DESC) AS last_rank
    FROM app_events
    WHERE user_id = {{user_id}}
      AND dt BETWEEN {{from_dt}} AND {{to_dt}}
)
SELECT
    session_id,
    max(platform) AS platform,
    min(occurred_at) AS started_at,
    max(occurred_at) AS ended_at,
    count(*) AS events,
    sum(CASE WHEN event_type = 'message_sent' THEN 1 ELSE 0 END) AS messages_sent,
    sum(CASE WHEN event_type = 'message_failed' THEN 1 ELSE 0 END) AS messages_failed,
    max(CASE WHEN first_rank = 1 THEN event_type END) AS first_event,
    max(CASE WHEN last_rank = 1 THEN event_type END) AS last_event
FROM events
GROUP BY session_id
ORDER BY started_at, session_id
