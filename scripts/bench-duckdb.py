#!/usr/bin/env python3
"""DuckDB on the same data as `meterbook bench`: load the generated usage CSV
into a DuckDB database file, then COPY it back out to CSV and to Parquet, and
produce the joined usage report in SQL (usage joined with the hierarchy and the
month's price sheet, cost per row) to /dev/null, as Meterbook's usage-details
report does.

Usage: python3 scripts/bench-duckdb.py DIR   (DIR as given to `meterbook bench --dir`)
Needs the `duckdb` package: scripts/bench.sh sets up a virtual environment with it.
Prints load rows/s, export and report rows/s and MB/s, and bytes on disk per row.
"""
import os
import sys
import time

import duckdb


def main() -> None:
    d = sys.argv[1] if len(sys.argv) > 1 else "bench-data"
    src = os.path.join(d, "usage.csv")
    db = os.path.join(d, "duck.db")
    out = os.path.join(d, "duck-export.csv")
    for p in (db, db + ".wal", out):
        if os.path.exists(p):
            os.remove(p)
    con = duckdb.connect(db)
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    # Exact types, as Meterbook stores them: a date and a 6-decimal quantity.
    t = time.perf_counter()
    con.execute(
        f"""CREATE TABLE usage AS SELECT * FROM read_csv('{src}', header = true,
            columns = {{'RecordId': 'VARCHAR', 'SubscriptionGuid': 'VARCHAR', 'Date': 'DATE',
                       'MeterId': 'VARCHAR', 'ConsumedQuantity': 'DECIMAL(18,6)',
                       'InstanceId': 'VARCHAR', 'ResourceGroup': 'VARCHAR',
                       'ResourceLocation': 'VARCHAR', 'ConsumedService': 'VARCHAR',
                       'Tags': 'VARCHAR', 'AdditionalInfo': 'VARCHAR',
                       'ServiceInfo1': 'VARCHAR', 'ServiceInfo2': 'VARCHAR'}})"""
    )
    con.execute("CHECKPOINT")
    load = time.perf_counter() - t
    rows = con.execute("SELECT count(*) FROM usage").fetchone()[0]
    t = time.perf_counter()
    con.execute(f"COPY usage TO '{out}' (HEADER)")
    export = time.perf_counter() - t
    t = time.perf_counter()
    con.execute("COPY usage TO '/dev/null' (HEADER, FORMAT csv)")
    sink = time.perf_counter() - t
    # The joined report: hierarchy and the month's price sheet (its first tier:
    # SQL here does not split tiered quantities, so DuckDB does less work than
    # Meterbook's rating) joined onto every row, cost computed exactly.
    con.execute(
        f"""CREATE TEMP TABLE hierarchy AS SELECT * FROM read_csv('{os.path.join(d, "hierarchy.csv")}',
            header = true, all_varchar = true)"""
    )
    con.execute(
        f"""CREATE TEMP TABLE prices AS SELECT * EXCLUDE (filename),
            regexp_extract(filename, 'prices-([0-9]+)[.]csv', 1) AS Period
            FROM read_csv('{os.path.join(d, "prices-*.csv")}', header = true, filename = true,
                          all_varchar = true)"""
    )
    report = """SELECT u.*, h.DepartmentName, h.DepartmentCostCenter, h.AccountName,
            h.AccountOwnerEmail, h.AccountCostCenter, h.SubscriptionName, p.MeterName,
            p.MeterCategory, p.MeterSubCategory, p.MeterRegion, p.UnitOfMeasure, p.PartNumber,
            CAST(p.UnitPrice AS DECIMAL(18,6)) AS UnitPrice,
            CAST(u.ConsumedQuantity * CAST(p.UnitPrice AS DECIMAL(18,6)) AS DECIMAL(18,6)) AS Cost
        FROM usage u
        LEFT JOIN hierarchy h USING (SubscriptionGuid)
        LEFT JOIN prices p ON p.MeterId = u.MeterId AND p.Period = strftime(u.Date, '%Y%m')
            AND CAST(p.TierMinimumUnits AS DECIMAL(18,6)) = 0"""
    joined_rows = con.execute(f"SELECT count(*) FROM ({report})").fetchone()[0]
    assert joined_rows == rows, (joined_rows, rows)
    joined_out = os.path.join(d, "duck-report.csv")
    t = time.perf_counter()
    con.execute(f"COPY ({report}) TO '{joined_out}' (HEADER, FORMAT csv)")
    joined_file = time.perf_counter() - t
    joined_bytes = os.path.getsize(joined_out)
    os.remove(joined_out)
    t = time.perf_counter()
    con.execute(f"COPY ({report}) TO '/dev/null' (HEADER, FORMAT csv)")
    joined = time.perf_counter() - t
    # In a fixed order, as Meterbook's report is (day, then RecordId).
    t = time.perf_counter()
    con.execute(f"COPY ({report} ORDER BY u.Date, u.RecordId) TO '/dev/null' (HEADER, FORMAT csv)")
    joined_ordered = time.perf_counter() - t
    pq = os.path.join(d, "duck-export.parquet")
    t = time.perf_counter()
    con.execute(f"COPY usage TO '{pq}' (FORMAT parquet, COMPRESSION snappy)")
    pq_secs = time.perf_counter() - t
    pq_bytes = os.path.getsize(pq)
    os.remove(pq)
    con.close()
    size = os.path.getsize(db)
    out_bytes = os.path.getsize(out)
    print(f"duckdb {duckdb.__version__} ({threads} threads): {rows} rows")
    print(f"load CSV          {load:8.2f} s   {rows / load:10.0f} rows/s")
    print(f"COPY TO CSV       {export:8.2f} s   {rows / export:10.0f} rows/s   {out_bytes / 1e6 / export:.1f} MB/s   ({out_bytes / 1e6:.1f} MB)")
    print(f"  (to /dev/null)  {sink:8.2f} s   {rows / sink:10.0f} rows/s   {out_bytes / 1e6 / sink:.1f} MB/s")
    print(f"joined report     {joined_file:8.2f} s   {rows / joined_file:10.0f} rows/s   {joined_bytes / 1e6 / joined_file:.1f} MB/s   ({joined_bytes / 1e6:.1f} MB, {joined_bytes / rows:.0f} bytes a row)")
    print(f"  (to /dev/null)  {joined:8.2f} s   {rows / joined:10.0f} rows/s   {joined_bytes / 1e6 / joined:.1f} MB/s")
    print(f"  (ordered, null) {joined_ordered:8.2f} s   {rows / joined_ordered:10.0f} rows/s   {joined_bytes / 1e6 / joined_ordered:.1f} MB/s")
    print(f"COPY TO Parquet   {pq_secs:8.2f} s   {rows / pq_secs:10.0f} rows/s   {pq_bytes / 1e6 / pq_secs:.1f} MB/s   ({pq_bytes / 1e6:.1f} MB)")
    print(f"bytes on disk     {size / rows:.1f} per row   ({size / 1e6:.1f} MB database)")


if __name__ == "__main__":
    main()
