-- Transform of one micro-batch of `app_events`.
--
-- Input: table `input` = the decoded records of the batch (columns of schemas/app_events.toml),
-- already deduplicated on `event_id`. Output: exactly the lake columns of the stream, in schema
-- order, then the partition columns `dt` and `hour` (UTC, from `occurred_at`).
-- See call_events.sql for the functions and the ordering rule.
SELECT
    event_id,
    event_type,
    occurred_at,
    user_id,
    account_id,
    session_id,
    platform,
    app_version,
    country,
    properties,
    extras,
    arrived_at,
    lake_dt(occurred_at) AS dt,
    lake_hour(occurred_at) AS hour
FROM input
ORDER BY occurred_at, event_id
