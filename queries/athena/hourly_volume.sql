-- hourly_volume: call events and distinct calls per UTC hour, region and channel.
--
-- Parameters: from_dt, to_dt (YYYY-MM-DD, inclusive; prunes partitions).
-- Columns: dt, hour, region ('unknown' when absent), channel, calls (distinct call_id with an
-- event in the hour), events (all call events of the hour).
-- Dialect: the common subset of Athena (Trino) and DataFusion (etl_query::dialect).
SELECT
    dt,
    hour,
    COALESCE(region, 'unknown') AS region,
    channel,
    count(DISTINCT call_id) AS calls,
    count(*) AS events
FROM call_events
WHERE dt BETWEEN {{from_dt}} AND {{to_dt}}
GROUP BY dt, hour, COALESCE(region, 'unknown'), channel
ORDER BY dt, hour, region, channel
