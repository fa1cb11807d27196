#!/usr/bin/env python3
"""Checks that what analysts are promised holds for a curated dataset and its catalog.

    python scripts/check_analysts.py --bin target/debug/social-reward --data DIR --db sqlite:FILE

Needs pandas, pyarrow, duckdb and polars. Two promises:

1. The dataset DIR/triplets/split=…/dt=…/*.parquet opens as one table in every usual client
   (pandas, pyarrow.dataset, DuckDB, polars): the same number of rows in each, more than none,
   `split` and `dt` as columns taken from the folders (they are not in the files), and the
   columns the Social-Reward loader reads (prompt, pos_path, neg_path). The catalog's manifest
   (`triplet_files`) counts the same rows.
2. Every canned query sql/*.sql gives the same answer from `social-reward query` (polars SQL) as
   from DuckDB over the same data, so that an analyst may use either. DuckDB reads the triplets'
   Parquet itself and the catalog tables as `query` exports them (--format parquet). Values are
   compared as text after normalising: numbers to 4 decimals, times to UTC
   `YYYY-MM-DDTHH:MM:SS.ffffff`, booleans to true/false, nulls to the empty string (as CSV has
   them).

Exit status 1, with the differences, when either promise is broken.
"""

import argparse
import csv
import io
import re
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas
import polars
import pyarrow.dataset
import pyarrow.parquet

REPO = Path(__file__).resolve().parent.parent
CATALOG_TABLES = ["images", "dead_letters", "triplet_files", "runs", "models", "consumer_offsets",
                  "emissions"]
LOADER_COLUMNS = ["prompt", "pos_path", "neg_path"]
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)?$")


def fail(message):
    print(f"check_analysts: {message}", file=sys.stderr)
    sys.exit(1)


def query(args, sql, *options):
    """`social-reward query SQL` (or `--file F` when sql is a Path); its stdout."""
    what = ["--file", str(sql)] if isinstance(sql, Path) else [sql]
    command = [args.bin, "query", *what, "--data", args.data, "--db", args.db, *options]
    done = subprocess.run(command, capture_output=True)
    if done.returncode != 0:
        fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr.decode().strip()}")
    # Bytes decoded as they are: text mode would turn a value's \r into \n.
    return done.stdout.decode()


def query_csv(args, sql):
    """`query --format csv`: (columns, rows of text)."""
    lines = list(csv.reader(io.StringIO(query(args, sql, "--format", "csv"), newline="")))
    return (lines[0], lines[1:]) if lines else ([], [])


def check_clients(args):
    """Each client's row count and columns for DIR/triplets; returns the agreed row count."""
    root = Path(args.data) / "triplets"
    files = sorted(root.glob("*/*/*.parquet"))
    if not files:
        fail(f"no Parquet files under {root}/split=…/dt=…/")
    glob = f"{root}/*/*/*.parquet"
    seen = {}
    frame = pandas.read_parquet(root)
    seen["pandas"] = (len(frame), list(frame.columns))
    dataset = pyarrow.dataset.dataset(root, format="parquet", partitioning="hive")
    seen["pyarrow"] = (dataset.count_rows(), dataset.schema.names)
    table = f"read_parquet('{glob}', hive_partitioning = true)"
    con = duckdb.connect()
    columns = [c[0] for c in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
    seen["duckdb"] = (con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0], columns)
    lazy = polars.scan_parquet(f"{root}/**/*.parquet", hive_partitioning=True)
    seen["polars"] = (lazy.select(polars.len()).collect().item(), lazy.collect_schema().names())

    problems = []
    for client, (rows, columns) in seen.items():
        missing = [c for c in ["split", "dt", *LOADER_COLUMNS] if c not in columns]
        if missing:
            problems.append(f"{client} has no column {', '.join(missing)} (it has {columns})")
    counts = {client: rows for client, (rows, _) in seen.items()}
    rows = counts["pyarrow"]
    if len(set(counts.values())) != 1:
        problems.append(f"the clients count different rows: {counts}")
    if rows == 0:
        problems.append(f"{root} holds no rows")

    single = pandas.read_parquet(files[0])
    missing = [c for c in LOADER_COLUMNS if c not in single.columns]
    if missing or len(single) == 0:
        problems.append(f"{files[0]} alone: {len(single)} rows, missing {missing}")
    for file in files:
        stale = [c for c in ["split", "dt"] if c in pyarrow.parquet.read_schema(file).names]
        if stale:
            problems.append(f"{file} holds {stale}: they belong in the folder names only")

    columns, manifest = query_csv(args, "SELECT * FROM triplet_files")
    listed = sum(int(row[columns.index("rows")]) for row in manifest)
    if listed != rows:
        problems.append(f"triplet_files lists {listed} rows in {len(manifest)} files, the files hold {rows}")

    if problems:
        fail("the dataset does not read alike everywhere:\n  " + "\n  ".join(problems))
    print(f"{rows} rows in {len(files)} files, alike in {', '.join(seen)}, pandas on one file "
          f"and the catalog's triplet_files")
    return rows


def duckdb_views(args, folder):
    """A DuckDB connection with views named as `query`'s tables: the triplets' Parquet (hive
    keys last and as text, as `query` has them) and each catalog table as `query` exports it."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    glob = f"{Path(args.data) / 'triplets'}/*/*/*.parquet"
    con.execute(f"CREATE VIEW triplets AS SELECT * EXCLUDE (split, dt), split, dt FROM "
                f"read_parquet('{glob}', hive_partitioning = true, hive_types_autocast = false)")
    for table in CATALOG_TABLES:
        path = Path(folder) / f"{table}.parquet"
        query(args, f"SELECT * FROM {table}", "--format", "parquet", "--out", str(path))
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{path}')")
    return con


def normal(text):
    """One value's text, made comparable between CSV and DuckDB's Python values."""
    if text in ("", "None"):
        return ""
    if text.lower() in ("true", "false", "nan", "inf", "-inf", "infinity", "-infinity"):
        return text.lower().replace("infinity", "inf")
    if NUMBER.match(text):
        value = float(text)
        if value.is_integer() and abs(value) >= 2**53:
            return str(int(text)) if text.lstrip("+-").isdigit() else f"{value:.0f}"
        rounded = f"{value:.4f}"
        return "0.0000" if rounded == "-0.0000" else rounded
    if TIME.match(text):
        time = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if time.tzinfo is not None:
            time = time.astimezone(timezone.utc).replace(tzinfo=None)
        return time.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text


def compare(name, binary, duck):
    """The differences between two (columns, rows of text) results, as lines."""
    (bin_columns, bin_rows), (duck_columns, duck_rows) = binary, duck
    if bin_columns != duck_columns:
        return [f"{name}: columns differ: query {bin_columns}, DuckDB {duck_columns}"]
    if len(bin_rows) != len(duck_rows):
        return [f"{name}: query gives {len(bin_rows)} rows, DuckDB {len(duck_rows)}"]
    problems = []
    for i, (ours, theirs) in enumerate(zip(bin_rows, duck_rows)):
        for column, a, b in zip(bin_columns, ours, theirs):
            if normal(a) != normal(b):
                problems.append(f"{name}: row {i + 1}, {column}: query {a!r}, DuckDB {b!r}")
    return problems[:10]


def check_queries(args, folder):
    """Runs every sql/*.sql in both engines; prints a line each; returns the differences."""
    con = duckdb_views(args, folder)
    problems = []
    print(f"{'query':<28} {'rows':>6}  columns")
    for path in sorted((REPO / "sql").glob("*.sql")):
        binary = query_csv(args, path)
        try:
            result = con.execute(path.read_text())
        except duckdb.Error as error:
            problems.append(f"{path.name}: DuckDB refuses it: {error}")
            continue
        duck_columns = [column[0] for column in result.description]
        duck_rows = [["" if v is None else str(v) for v in row] for row in result.fetchall()]
        found = compare(path.name, binary, (duck_columns, duck_rows))
        problems += found
        print(f"{path.stem:<28} {len(binary[1]):>6}  {len(binary[0])}{'  DIFFERENT' if found else ''}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", required=True, help="the social-reward binary")
    parser.add_argument("--data", required=True, help="the curated dataset folder (holds triplets/)")
    parser.add_argument("--db", required=True, help="the catalog URL, e.g. sqlite:FILE")
    args = parser.parse_args()
    check_clients(args)
    with tempfile.TemporaryDirectory() as folder:
        problems = check_queries(args, folder)
    if problems:
        fail("polars SQL (`query`) and DuckDB disagree:\n  " + "\n  ".join(problems))
    print("every canned query agrees in polars SQL and DuckDB")


if __name__ == "__main__":
    main()
