"""Runs dumn's data-plane SQL on DuckDB, for the comparison in ci/bench-data.sh.

The SQL is the repository's own sql/feedback.sql and sql/scoring_input.sql, with the same
${...} parameters and a mechanical translation of the function names DuckDB spells
differently (array_slice -> list_slice, cardinality -> len,
a timestamp's nanoseconds CAST(ts AS BIGINT) -> epoch_ns(ts),
and dumn's aggregate dumn_recent(item, ts, n) -> list(item ORDER BY ts DESC, item DESC)[1:n]). The training examples use
benches/duckdb/training_examples.sql: DuckDB has no dumn_history window function, so that
file builds the same rows in DuckDB's own best way (ordered lists, counts, slices). The result is written to Parquet, like `dumn sequences` does.

usage: duckdb_sequences.py training|scoring DATA OUT --seq-len T [--cutoff TIMESTAMP]
"""

import argparse
import pathlib
import re
import sys
import time

import duckdb

ROOT = pathlib.Path(__file__).resolve().parent.parent


def render(path, params):
    lines = (ROOT / path).read_text().splitlines()
    sql = "\n".join(l for l in lines if not l.strip().startswith("--"))
    sql = re.sub(r"\$\{(\w+)\}", lambda m: params[m.group(1)], sql)
    # dumn_recent(item, ts [, n]) FILTER (WHERE c) is dumn's aggregate (udfs/recent.rs); DuckDB
    # spells it with its ordered list aggregate.
    def recent(m):
        item, ts, n, cond = m.group(1), m.group(2), m.group(3), m.group(4)
        agg = f"list({item} ORDER BY {ts} DESC, {item} DESC) FILTER (WHERE {cond})"
        if n:
            agg = f"list_slice({agg}, 1, {n})"
        return f"coalesce({agg}, [])"

    sql = re.sub(
        r"dumn_recent\((\w+), (\w+)(?:, (\w+))?\) FILTER \(WHERE ([^)]*)\)", recent, sql
    )
    sql = sql.replace("array_slice(", "list_slice(").replace("cardinality(", "len(")
    sql = sql.replace("CAST(ts AS BIGINT)", "epoch_ns(ts)")
    return sql


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("output", choices=["training", "scoring"])
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--seq-len", default="100")
    ap.add_argument("--cutoff", default=None)
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    params = {"seq_len": a.seq_len}
    if a.cutoff:
        params["cutoff"] = f"TIMESTAMP '{a.cutoff}'"
    con = duckdb.connect()
    if a.threads:
        con.execute(f"SET threads = {a.threads}")
    tables = ["impressions", "actions", "users", "items"]
    if a.output == "scoring":
        tables.append("candidates")
    for t in tables:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{a.data}/{t}/*.parquet')")
    step = "benches/duckdb/training_examples.sql" if a.output == "training" else "sql/scoring_input.sql"
    view = "training_examples" if a.output == "training" else "scoring_input"
    for path in ["sql/feedback.sql", step]:
        for stmt in render(path, params).split(";"):
            # DataFusion's own settings (SET datafusion.…) mean nothing to DuckDB.
            if stmt.strip() and not stmt.strip().startswith("SET datafusion."):
                con.execute(stmt)
    started = time.time()
    con.execute(f"COPY (SELECT * FROM {view}) TO '{a.out}' (FORMAT parquet, COMPRESSION snappy)")
    secs = time.time() - started
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{a.out}')").fetchone()[0]
    print(f"duckdb: {rows} rows of {view} in {secs:.2f}s ({rows / secs:.0f} rows/s)")


if __name__ == "__main__":
    sys.exit(main())
