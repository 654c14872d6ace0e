-- call_quality: media quality (MOS) of the periodic quality samples, per day.
--
-- Grain: one row per (day, region, channel); only quality_sample events with a MOS count
-- (the summary MOS on call_ended is not a sample and is left out).
-- Columns:
--   day            DATE          UTC day of the sample
--   region         VARCHAR       media region, 'unknown' when absent
--   channel        VARCHAR       voice | video
--   samples        BIGINT        quality samples with a MOS
--   avg_mos        DECIMAL(5,2)  mean MOS
--   poor_samples   BIGINT        samples with MOS < 3.5
--   poor_share     DECIMAL(6,4)  poor_samples / samples
--
-- Dialect notes: averages and ratios go through DOUBLE PRECISION, then CAST to DECIMAL
-- (PostgreSQL has no round(double precision, int)).
SELECT
    CAST(occurred_at AS DATE) AS day,
    COALESCE(region, 'unknown') AS region,
    channel,
    COUNT(*) AS samples,
    CAST(AVG(quality_mos) AS DECIMAL(5, 2)) AS avg_mos,
    SUM(CASE WHEN quality_mos < 3.5 THEN 1 ELSE 0 END) AS poor_samples,
    CAST(CAST(SUM(CASE WHEN quality_mos < 3.5 THEN 1 ELSE 0 END) AS DOUBLE PRECISION)
         / NULLIF(COUNT(*), 0) AS DECIMAL(6, 4)) AS poor_share
FROM call_events
WHERE event_type = 'quality_sample' AND quality_mos IS NOT NULL
GROUP BY CAST(occurred_at AS DATE), COALESCE(region, 'unknown'), channel
ORDER BY day, region, channel
