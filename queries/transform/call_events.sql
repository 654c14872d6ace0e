-- Transform of one micro-batch of `call_events`.
--
-- Input: table `input` = the decoded records of the batch (columns of schemas/call_events.toml,
-- `quality` still a struct, `caller`/`callee` still raw E.164 numbers), already deduplicated on
-- `event_id` (the first record of each id in the batch wins; later batches are deduplicated by
-- the pipeline's dedup window). Output: exactly the lake columns of the stream, in schema order, then the partition
-- columns `dt` and `hour` (UTC, from `occurred_at`). The pipeline checks the output schema and
-- refuses to write anything else.
--
-- * mask_phone(x): HMAC-SHA256 of the number with the configured secret key, lowercase hex.
--   The raw number never leaves this query.
-- * lake_dt(ts) / lake_hour(ts): 'YYYY-MM-DD' and 'HH' of a timestamp in UTC.
-- * `input` also has `arrived_at` (when the record reached the source: Kinesis'
--   ApproximateArrivalTimestamp, or a file's modification time), added by the pipeline; the lake
--   keeps it after `extras`.
-- * Rows are ordered by event time so Parquet row-group statistics prune well and replays
--   produce identical files.
SELECT
    event_id,
    call_id,
    event_type,
    occurred_at,
    account_id,
    mask_phone(caller) AS caller,
    mask_phone(callee) AS callee,
    direction,
    channel,
    region,
    codec,
    duration_ms,
    hangup_cause,
    quality['mos'] AS quality_mos,
    quality['jitter_ms'] AS quality_jitter_ms,
    quality['packet_loss_pct'] AS quality_packet_loss_pct,
    quality['rtt_ms'] AS quality_rtt_ms,
    extras,
    arrived_at,
    lake_dt(occurred_at) AS dt,
    lake_hour(occurred_at) AS hour
FROM input
ORDER BY occurred_at, event_id
