"""The reference windowed job (benches/reference-windows.toml) in PyFlink's Flink SQL.

    python reference_windows.py rows.jsonl out-dir [parallelism]

Per player: a 60 s tumbling window and a 5 min / 60 s sliding (HOP) window
over the event time `ts` (ms), with a 5 s bounded-out-of-orderness
watermark; count, kills, deaths, assists, average gold and KDA =
(kills + assists) / max(1, deaths), as riftstream and the DuckDB GROUP BY
compute them. A bounded file source in streaming mode: the final watermark
fires every window at the end of the input. Output: JSON lines under
out-dir/tumbling and out-dir/sliding, window bounds in epoch ms.

`scripts/bench.sh pyflink` runs it beside riftstream when PyFlink and a
JVM are installed (PYFLINK_PYTHON names the interpreter that has PyFlink).
"""
import sys

from pyflink.table import EnvironmentSettings, TableEnvironment

WINDOWS = {
    "tumbling": "TUMBLE(TABLE rows_in, DESCRIPTOR(rt), INTERVAL '60' SECOND)",
    "sliding": "HOP(TABLE rows_in, DESCRIPTOR(rt), INTERVAL '60' SECOND, INTERVAL '5' MINUTE)",
}


def main(inp, out, parallelism):
    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    env.get_config().set("parallelism.default", str(parallelism))
    env.get_config().set("table.local-time-zone", "UTC")
    env.execute_sql(f"""
        CREATE TABLE rows_in (
            match_id STRING, player_id STRING, champion STRING, ts BIGINT,
            kills BIGINT, deaths BIGINT, assists BIGINT, gold BIGINT, cs BIGINT, win BOOLEAN,
            rt AS TO_TIMESTAMP_LTZ(ts, 3),
            WATERMARK FOR rt AS rt - INTERVAL '5' SECOND
        ) WITH ('connector' = 'filesystem', 'path' = '{inp}', 'format' = 'json')""")
    statements = env.create_statement_set()
    for name, window in WINDOWS.items():
        env.execute_sql(f"""
            CREATE TABLE {name}_out (
                window_start BIGINT, window_end BIGINT, player_id STRING, `count` BIGINT,
                kills BIGINT, deaths BIGINT, assists BIGINT, avg_gold DOUBLE, kda DOUBLE
            ) WITH ('connector' = 'filesystem', 'path' = '{out}/{name}', 'format' = 'json')""")
        statements.add_insert_sql(f"""
            INSERT INTO {name}_out
            SELECT UNIX_TIMESTAMP(CAST(window_start AS STRING)) * 1000,
                   UNIX_TIMESTAMP(CAST(window_end AS STRING)) * 1000,
                   player_id, COUNT(*), SUM(kills), SUM(deaths), SUM(assists),
                   AVG(CAST(gold AS DOUBLE)),
                   CAST(SUM(kills) + SUM(assists) AS DOUBLE) / GREATEST(1, SUM(deaths))
            FROM {window}
            GROUP BY window_start, window_end, player_id""")
    statements.execute().wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2)
