-- Transform of one micro-batch of `app_events`.
--
-- Input: table `input` = the decoded records (columns of schemas/app_events.toml) plus `_row`,
-- the record's position in the batch. Output: exactly the lake columns of the stream, in schema
-- order, then the partition columns `dt` and `hour` (UTC, from `occurred_at`).
-- See call_events.sql for the rules (dedup, ordering).
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
    lake_dt(occurred_at) AS dt,
    lake_hour(occurred_at) AS hour
FROM (
    SELECT *, row_number() OVER (PARTITION BY event_id ORDER BY _row) AS _copy
    FROM input
) AS numbered
WHERE _copy = 1
ORDER BY occurred_at, event_id
