-- late_arrivals: call events per event day by how long after the event they reached the stream.
--
-- Parameters: from_dt, to_dt (YYYY-MM-DD, inclusive: the events' day; prunes partitions).
-- Columns: dt (event day), bucket (0 under a minute, 1 under an hour, 2 under a day, 3 a day or
-- more, 9 unknown: no arrival time), lateness (the bucket in words), events, first_arrival and
-- last_arrival (arrived_at: Kinesis' ApproximateArrivalTimestamp; for ingested files, the
-- file's modification time). An event that arrived before its own occurred_at (producer clock
-- skew) counts as under a minute.
-- Dialect: the common subset of Athena (Trino) and DataFusion (etl_query::dialect); intervals
-- are written the ANSI way (INTERVAL '1' HOUR), which both read.
WITH e AS (
    SELECT
        dt,
        arrived_at,
        CASE
            WHEN arrived_at IS NULL THEN 9
            WHEN arrived_at < occurred_at + INTERVAL '1' MINUTE THEN 0
            WHEN arrived_at < occurred_at + INTERVAL '1' HOUR THEN 1
            WHEN arrived_at < occurred_at + INTERVAL '1' DAY THEN 2
            ELSE 3
        END AS bucket
    FROM call_events
    WHERE dt BETWEEN {{from_dt}} AND {{to_dt}}
)
SELECT
    dt,
    bucket,
    CASE bucket
        WHEN 0 THEN 'under 1 minute'
        WHEN 1 THEN '1 to 60 minutes'
        WHEN 2 THEN '1 to 24 hours'
        WHEN 3 THEN '24 hours or more'
        ELSE 'unknown'
    END AS lateness,
    count(*) AS events,
    min(arrived_at) AS first_arrival,
    max(arrived_at) AS last_arrival
FROM e
GROUP BY dt, bucket
ORDER BY dt, bucket
