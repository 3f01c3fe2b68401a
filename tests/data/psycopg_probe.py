"""Runs each SQL text given as an argument through psycopg (libpq settings from the PG*
environment `sluice connect --exec` sets) three ways: text results, binary results, and a
server-side prepared statement; prints every value it got back, one per line. Exits non-zero
on the first error, naming the text."""

import sys

import psycopg

with psycopg.connect("", autocommit=True) as conn:
    for sql in sys.argv[1:]:
        for mode in ("text", "binary", "prepared"):
            try:
                with conn.cursor(binary=(mode == "binary")) as cur:
                    cur.execute(sql, prepare=(mode == "prepared"))
                    for row in cur.fetchall() if cur.description else []:
                        for value in row:
                            print(f"{mode}\t{value!r}")
            except Exception as e:  # noqa: BLE001 - report and fail
                print(f"{mode} {sql}: {type(e).__name__}: {e}", file=sys.stderr)
                sys.exit(1)
