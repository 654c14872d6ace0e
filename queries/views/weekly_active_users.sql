-- weekly_active_users: distinct users and sessions with any app event, per ISO week.
--
-- Grain: one row per (week, platform, country). As in daily_active_users, a user active on two
-- platforms (or countries) in a week counts once in each row, so rows do not add up to the
-- week's total; a session belongs to one platform and country, so sessions do add up.
-- Columns:
--   week           DATE     Monday (UTC) of the week of the events
--   platform       VARCHAR  ios | android | web
--   country        VARCHAR  ISO 3166-1 alpha-2 country, 'unknown' when absent
--   active_users   BIGINT   distinct user_id
--   sessions       BIGINT   distinct session_id
--
-- Dialect notes: portable as written; date_trunc('week', ...) starts weeks on Monday in
-- DataFusion, PostgreSQL and Redshift.
SELECT
    CAST(date_trunc('week', occurred_at) AS DATE) AS week,
    platform,
    COALESCE(country, 'unknown') AS country,
    COUNT(DISTINCT user_id) AS active_users,
    COUNT(DISTINCT session_id) AS sessions
FROM app_events
GROUP BY CAST(date_trunc('week', occurred_at) AS DATE), platform, COALESCE(country, 'unknown')
ORDER BY week, platform, country
