#!/usr/bin/env python3
"""Checks the reference windowed job's output against a plain SQL GROUP BY.

usage: check_reference.py INPUT.jsonl OUTPUT_DIR

For both window kinds (60 s tumbling; 5 min / 60 s sliding), the rows
(window_start, window_end, player_id, count, kills, deaths, assists) must be
exactly those of DuckDB's GROUP BY over the same windows, and avg_gold and kda
equal within 1e-9. Exits non-zero on any difference.
"""
import sys
import duckdb

inp, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.sql(f"create table rows as select * from read_json('{inp}', format='newline_delimited', columns={{'player_id':'VARCHAR','ts':'BIGINT','kills':'BIGINT','deaths':'BIGINT','assists':'BIGINT','gold':'BIGINT'}})")
expected = {
    "tumbling": """
        select (ts // 60000) * 60000 as ws, (ts // 60000) * 60000 + 60000 as we, player_id,
               count(*) c, sum(kills) k, sum(deaths) d, sum(assists) a, avg(gold) g,
               (sum(kills) + sum(assists)) / greatest(1, sum(deaths)) kda
        from rows group by all""",
    "sliding": """
        select ws, ws + 300000 as we, player_id,
               count(*) c, sum(kills) k, sum(deaths) d, sum(assists) a, avg(gold) g,
               (sum(kills) + sum(assists)) / greatest(1, sum(deaths)) kda
        from (select *, unnest(generate_series((ts // 60000) * 60000 - 240000, (ts // 60000) * 60000, 60000)) as ws from rows)
        group by all""",
}
failed = False
for kind, sql in expected.items():
    con.sql(f"create or replace table got as select * from read_json('{out}/{kind}*.jsonl', format='newline_delimited')")
    revisions = con.sql("select count(*) from got where revision > 0").fetchall()[0][0]
    con.sql(f"create or replace table want as {sql}")
    n_want = con.sql("select count(*) from want").fetchall()[0][0]
    n_got = con.sql("select count(*) from got").fetchall()[0][0]
    missing = con.sql("""select count(*) from want w anti join got g
        on g.window_start = w.ws and g.window_end = w.we and g.player_id = w.player_id
       and g.count = w.c and g.kills = w.k and g.deaths = w.d and g.assists = w.a""").fetchall()[0][0]
    extra = con.sql("""select count(*) from got g anti join want w
        on g.window_start = w.ws and g.window_end = w.we and g.player_id = w.player_id
       and g.count = w.c and g.kills = w.k and g.deaths = w.d and g.assists = w.a""").fetchall()[0][0]
    off = con.sql("""select count(*) from got g join want w
        on g.window_start = w.ws and g.window_end = w.we and g.player_id = w.player_id
        where abs(g.avg_gold - w.g) > 1e-9 * greatest(1, abs(w.g)) or abs(g.kda - w.kda) > 1e-9 * greatest(1, abs(w.kda))""").fetchall()[0][0]
    ok = missing == 0 and extra == 0 and off == 0 and revisions == 0 and n_want == n_got
    failed |= not ok
    print(f"{kind}: {n_got} rows (SQL {n_want}); missing {missing}, extra {extra}, avg/kda off {off}, re-fires {revisions}: {'OK' if ok else 'MISMATCH'}")
sys.exit(1 if failed else 0)
