-- mos_distribution: how quality-sample MOS values spread over half-point buckets, per day.
--
-- Grain: one row per (day, mos_bucket) that has samples (empty buckets are not listed).
-- Same sample set as call_quality: quality_sample events with a MOS.
-- Columns:
--   day          DATE     UTC day of the sample
--   mos_bucket   VARCHAR  '1.0-1.5', '1.5-2.0', ..., '4.5-5.0'; lower bound included, upper
--                         excluded except 5.0; MOS below 1.0 falls in the first bucket, above 5.0
--                         in the last. The labels sort in bucket order.
--   samples      BIGINT   samples in the bucket
--
-- Dialect notes: portable as written (CASE instead of width_bucket / string formatting).
SELECT
    CAST(occurred_at AS DATE) AS day,
    CASE
        WHEN quality_mos < 1.5 THEN '1.0-1.5'
        WHEN quality_mos < 2.0 THEN '1.5-2.0'
        WHEN quality_mos < 2.5 THEN '2.0-2.5'
        WHEN quality_mos < 3.0 THEN '2.5-3.0'
        WHEN quality_mos < 3.5 THEN '3.0-3.5'
        WHEN quality_mos < 4.0 THEN '3.5-4.0'
        WHEN quality_mos < 4.5 THEN '4.0-4.5'
        ELSE '4.5-5.0'
    END AS mos_bucket,
    COUNT(*) AS samples
FROM call_events
WHERE event_type = 'quality_sample' AND quality_mos IS NOT NULL
GROUP BY
    CAST(occurred_at AS DATE),
    CASE
        WHEN quality_mos < 1.5 THEN '1.0-1.5'
        WHEN quality_mos < 2.0 THEN '1.5-2.0'
        WHEN quality_mos < 2.5 THEN '2.0-2.5'
        WHEN quality_mos < 3.0 THEN '2.5-3.0'
        WHEN quality_mos < 3.5 THEN '3.0-3.5'
        WHEN quality_mos < 4.0 THEN '3.5-4.0'
        WHEN quality_mos < 4.5 THEN '4.0-4.5'
        ELSE '4.5-5.0'
    END
ORDER BY day, mos_bucket
