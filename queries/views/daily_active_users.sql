-- daily_active_users: distinct users with any app event, per day.
--
-- Grain: one row per (day, platform, country). A user active on two platforms (or countries)
-- the same day counts once in each row, so rows do not add up to the day's total.
-- Columns:
--   day            DATE     UTC day of the events
--   platform       VARCHAR  ios | android | web
--   country        VARCHAR  ISO 3166-1 alpha-2 country, 'unknown' when absent
--   active_users   BIGINT   distinct user_id
--
-- Dialect notes: portable as written.
SELECT
    CAST(occurred_at AS DATE) AS day,
    platform,
    COALESCE(country, 'unknown') AS country,
    COUNT(DISTINCT user_id) AS active_users
FROM app_events
GROUP BY CAST(occurred_at AS DATE), platform, COALESCE(country, 'unknown')
ORDER BY day, platform, country
