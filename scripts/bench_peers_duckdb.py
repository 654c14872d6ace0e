"""DuckDB's side of scripts/bench-peers: the work `etl ingest` does, in DuckDB SQL.

    python bench_peers_duckdb.py INPUT_DIR OUT_DIR ZSTD_LEVEL THREADS

Per stream (app_events.ndjson, call_events.ndjson in INPUT_DIR): read_json with the stream's
declared columns (malformed lines skipped), occurred_at as ISO-8601 text or epoch milliseconds,
event types and enums checked as etl's schemas do (app_events' event_type is open: any snake_case
name; other enums: their values), DISTINCT ON (event_id), sha256 of caller/callee, ordered by
(occurred_at, event_id), zstd Parquet PARTITION_BY (dt, hour) under OUT_DIR/<stream>. etl also
checks lengths and formats, so DuckDB writes a few more rows (~0.02% of the generator's mix). Prints one JSON object: per stream the rows written and Parquet bytes.
`seconds` is the time from the start of this script (before DuckDB is loaded) to the end of the
last COPY, like the whole process of `etl ingest`; counting the written rows comes after it.
"""

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import duckdb  # noqa: E402


def enum_values(schema_path, field):
    """The `values` of enum `field` in a schemas/*.toml file."""
    import tomllib

    with open(schema_path, "rb") as f:
        schema = tomllib.load(f)
    for fld in schema["fields"]:
        if fld["name"] == field:
            return fld["values"]
    raise SystemExit(f"{schema_path}: no field {field}")


def event_type_check(schema_path):
    """SQL condition for a valid event_type: one of `values`, or for an open enum (app_events)
    any text matching its `pattern` of at most `max_length` bytes."""
    import tomllib

    with open(schema_path, "rb") as f:
        schema = tomllib.load(f)
    fld = next(f for f in schema["fields"] if f["name"] == "event_type")
    if fld.get("open"):
        return (f"regexp_full_match(event_type, '{fld['pattern'].strip('^$')}') "
                f"AND strlen(event_type) <= {fld['max_length']}")
    return f"event_type IN ({sql_list(fld['values'])})"


def sql_list(values):
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def main():
    input_dir, out_dir, level, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    schemas = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schemas")
    os.makedirs(out_dir, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    # occurred_at is ISO-8601 text (any offset) or epoch milliseconds, as in etl's schemas.
    con.execute(
        "CREATE MACRO event_time(x) AS CASE WHEN regexp_full_match(x, '[0-9]+') "
        "THEN epoch_ms(x::BIGINT) ELSE TRY_CAST(x AS TIMESTAMPTZ)::TIMESTAMP END"
    )
    streams = {
        "app_events": (
            {
                "event_id": "VARCHAR",
                "event_type": "VARCHAR",
                "occurred_at": "VARCHAR",
                "user_id": "VARCHAR",
                "account_id": "VARCHAR",
                "session_id": "VARCHAR",
                "platform": "VARCHAR",
                "app_version": "VARCHAR",
                "country": "VARCHAR",
                "properties": "JSON",
            },
            "event_id, event_type, occurred_at, user_id, account_id, session_id, platform, "
            "app_version, country, properties",
            "platform IN ({})".format(sql_list(enum_values(os.path.join(schemas, "app_events.toml"), "platform"))),
        ),
        "call_events": (
            {
                "event_id": "VARCHAR",
                "call_id": "VARCHAR",
                "event_type": "VARCHAR",
                "occurred_at": "VARCHAR",
                "account_id": "VARCHAR",
                "caller": "VARCHAR",
                "callee": "VARCHAR",
                "direction": "VARCHAR",
                "channel": "VARCHAR",
                "region": "VARCHAR",
                "codec": "VARCHAR",
                "duration_ms": "BIGINT",
                "hangup_cause": "VARCHAR",
                "quality": "STRUCT(mos DOUBLE, jitter_ms DOUBLE, packet_loss_pct DOUBLE, rtt_ms DOUBLE)",
            },
            "event_id, call_id, event_type, occurred_at, account_id, sha256(caller) AS caller, "
            "sha256(callee) AS callee, direction, channel, region, codec, duration_ms, hangup_cause, "
            "quality.mos AS quality_mos, quality.jitter_ms AS quality_jitter_ms, "
            "quality.packet_loss_pct AS quality_packet_loss_pct, quality.rtt_ms AS quality_rtt_ms",
            "direction IN ('inbound', 'outbound') AND channel IN ('voice', 'video')",
        ),
    }
    outputs = {}
    for stream, (columns, select, check) in streams.items():
        types = event_type_check(os.path.join(schemas, f"{stream}.toml"))
        cols = "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"
        path = os.path.join(input_dir, f"{stream}.ndjson")
        out = os.path.join(out_dir, stream)
        con.execute(
            f"""
            COPY (
              SELECT {select},
                     strftime(occurred_at, '%Y-%m-%d') AS dt, strftime(occurred_at, '%H') AS hour
              FROM (
                SELECT DISTINCT ON (event_id) * REPLACE (event_time(occurred_at) AS occurred_at)
                FROM read_json('{path}', format = 'newline_delimited', ignore_errors = true,
                               columns = {cols})
                WHERE event_id IS NOT NULL AND event_time(occurred_at) IS NOT NULL
                  AND {types} AND {check}
              )
              ORDER BY occurred_at, event_id
            ) TO '{out}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL {level},
                          PARTITION_BY (dt, hour), OVERWRITE_OR_IGNORE)
            """
        )
        outputs[stream] = out
    result = {"seconds": time.perf_counter() - STARTED}
    for stream, out in outputs.items():
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet')").fetchone()[0]
        size = 0
        for root, _, files in os.walk(out):
            size += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.endswith(".parquet"))
        result[stream] = {"written": rows, "parquet_bytes": size}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
