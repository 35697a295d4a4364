"""Customer search latency (issue 23): ``GET /api/customers?q=`` over
100,000 customers, for an admin and for a staff token.

    python bench/customers.py                       # a throw-away embedded PostgreSQL
    python bench/customers.py --dsn postgresql://... # a fresh database on that server
    DATABASE_URL=postgresql://... python bench/customers.py

It migrates a database of its own (on ``--dsn``/``DATABASE_URL``: a new
database, dropped afterwards), loads --customers customers (names repeat,
as real ones do: 80 first names x 150 last names; each with a phone and
an e-mail) and --appointments appointments over 20 staff members, starts
``run.py`` on it, and sends --queries searches per token, one after
another over one kept-alive connection, timing each request at the client:
1 to 2 letters (word starts: the widest matches), 3 to 6 letters of a name
(anywhere), e-mail fragments and phone digits. Prints p50/p90/p99/max per
token and kind, and the plans of a 1-letter and a 4-letter search.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness import start_run_py  # noqa: E402

from tornado_sse.auth import issue_token  # noqa: E402
from tornado_sse.migrate import migrate  # noqa: E402

SECRET = "customers-bench-secret-not-for-production-0123"
FIRST = ["Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hannes", "Ida", "Jan", "Katrin", "Lukas",
         "Marta", "Noah", "Olga", "Paul", "Rosa", "Samir", "Tilda", "Viktor", "Amir", "Bea", "Carl", "Dana",
         "Emil", "Fatima", "Georg", "Hanna", "Ivan", "Jule", "Karl", "Lea", "Moritz", "Nina", "Oskar", "Pia",
         "Quentin", "Rania", "Stefan", "Tara", "Ugo", "Vera", "Wanda", "Xaver", "Yara", "Zeynep", "Aylin",
         "Bruno", "Cem", "Doris", "Erik", "Frieda", "Gustav", "Helga", "Ilse", "Jonas", "Kim", "Luca", "Mia",
         "Nils", "Ole", "Petra", "Rudi", "Sofia", "Till", "Uwe", "Valentin", "Wilma", "Yusuf", "Zoe", "Alma",
         "Boris", "Chiara", "Dirk", "Ella", "Finn", "Gina", "Henrik", "Iris", "Jasper"]
LAST = ["Berg", "Nowak", "Schulz", "Okafor", "Lindgren", "Moreau", "Yilmaz", "Fischer", "Costa", "Novak",
        "Hansen", "Kowalski", "Rossi", "Weber", "Dubois", "Jensen", "Popescu", "Meyer", "Horvat", "Svensson",
        "Baker", "Ivanova", "Keller", "Schmidt", "Wagner", "Becker", "Hoffmann", "Koch", "Richter", "Klein",
        "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann",
        "Lange", "Schmitt", "Werner", "Krause", "Meier", "Lehmann", "Schmid", "Schulze", "Maier", "Köhler",
        "Herrmann", "König", "Walter", "Mayer", "Huber", "Kaiser", "Fuchs", "Peters", "Lang", "Scholz",
        "Möller", "Weiß", "Jung", "Hahn", "Schubert", "Vogel", "Friedrich", "Keller", "Günther", "Frank",
        "Berger", "Winkler", "Roth", "Beck", "Lorenz", "Baumann", "Franke", "Albrecht", "Schuster", "Simon",
        "Ludwig", "Böhm", "Winter", "Kraus", "Martin", "Schumacher", "Krämer", "Vogt", "Stein", "Jäger",
        "Otto", "Sommer", "Groß", "Seidel", "Heinrich", "Brandt", "Haas", "Schreiber", "Graf", "Schulte",
        "Dietrich", "Ziegler", "Kuhn", "Kühn", "Pohl", "Engel", "Horn", "Busch", "Bergmann", "Thomas", "Voigt",
        "Sauer", "Arnold", "Wolff", "Pfeiffer", "Garcia", "Silva", "Santos", "Pereira", "Ferreira", "Almeida",
        "Nielsen", "Larsen", "Andersen", "Pedersen", "Kristensen", "Olsen", "Johansson", "Karlsson", "Nilsson",
        "Eriksson", "Larsson", "Olsson", "Persson", "Gustafsson", "Petrov", "Smirnov", "Kuznetsov", "Popov",
        "Sokolov", "Lebedev", "Kozlov", "Novikov", "Morozov", "Volkov", "Wójcik", "Kowalczyk", "Kamiński"]
STAFF = 20


@contextmanager
def database(dsn: str | None, workdir: Path) -> Iterator[str]:
    """A migrated database of the bench's own: new on ``dsn``'s server
    (dropped afterwards), or a throw-away embedded PostgreSQL."""
    with ExitStack() as stack:
        if dsn is None:
            from tornado_sse.pgembedded import get_server

            server = get_server(workdir / "pgdata", cleanup_mode="delete")
            stack.callback(server.cleanup)
            db = str(server.get_uri())
        else:
            name = "tsse_bench_customers_" + uuid.uuid4().hex[:8]
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')

            def drop() -> None:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

            stack.callback(drop)
            db = conninfo.make_conninfo(dsn, dbname=name)
        migrate(db)
        yield db


def load(dsn: str, customers: int, appointments: int) -> dict[str, object]:
    """Customers and appointments, generated in SQL; what the tables hold."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO staff (id, name) SELECT s, 'Staff ' || s FROM generate_series(1, %s) s",
                     (STAFF,))
        conn.execute("INSERT INTO products (id, name) VALUES (101, 'Haircut')")
        conn.execute("""
            INSERT INTO customers (id, name, phone, email)
            SELECT i, f.name || ' ' || l.name,
                   '+49 ' || (150 + i %% 30) || ' ' || lpad(((i * 7919) %% 10000000)::text, 7, '0'),
                   lower(f.name || '.' || l.name) || i || '@example.com'
            FROM generate_series(1, %(n)s) i
            JOIN LATERAL (SELECT (%(first)s::text[])[1 + (i * 31) %% cardinality(%(first)s::text[])] AS name) f
                 ON true
            JOIN LATERAL (SELECT (%(last)s::text[])[1 + (i * 17 + i / 7) %% cardinality(%(last)s::text[])]
                          AS name) l ON true""",
                     {"n": customers, "first": FIRST, "last": LAST})
        # Spread over two years around now, one staff member each (a few
        # with two); overlaps allowed so the bench never trips sql/005.
        conn.execute("""
            INSERT INTO appointments (product_id, staff_ids, customer_id, start_at, end_at, status,
                                      overlap_allowed)
            SELECT 101, CASE WHEN i %% 10 = 0 THEN ARRAY[1 + i %% 20, 1 + (i + 1) %% 20]
                             ELSE ARRAY[1 + i %% 20] END::bigint[],
                   1 + (i * 7919) %% %(customers)s,
                   now() - interval '365 days' + i * interval '10 minutes',
                   now() - interval '365 days' + i * interval '10 minutes' + interval '45 minutes',
                   'confirmed', true
            FROM generate_series(1, %(n)s) i""", {"n": appointments, "customers": customers})
        conn.execute("ANALYZE customers")
        conn.execute("ANALYZE appointments")
        staff_customers = conn.execute(
            "SELECT count(DISTINCT customer_id) FROM appointments WHERE staff_ids @> '{1}'").fetchone()
        trgm = conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'customers_search_trgm_idx'"
                            ).fetchone()
        version = conn.execute("SHOW server_version").fetchone()
    return {"staff 1 customers": staff_customers[0] if staff_customers else None,
            "trigram index": bool(trgm and trgm[0]), "postgres": version[0] if version else "?"}


def queries(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """(kind, q): a mix of what a desk types."""
    out: list[tuple[str, str]] = []
    letters = "abcdefghijklmnoprstuvwz"
    for i in range(n):
        kind = ("1-2 letters", "3-6 letters", "e-mail", "phone")[i % 4]
        if kind == "1-2 letters":
            q = rng.choice(letters) + (rng.choice(letters) if rng.random() < 0.5 else "")
        elif kind == "3-6 letters":
            name = rng.choice(FIRST + LAST).lower()
            start = rng.randrange(0, max(1, len(name) - 3))
            q = name[start:start + rng.randint(3, 6)]
        elif kind == "e-mail":
            q = f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()[:3]}"
        else:
            q = f"+49 {150 + rng.randrange(30)} {rng.randrange(100, 999)}"
        out.append((kind, q))
    return out


def timed(port: int, token: str, qs: list[tuple[str, str]]) -> dict[str, list[float]]:
    """Milliseconds per request by kind, over one kept-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": "Bearer " + token}
    by_kind: dict[str, list[float]] = {}
    for kind, q in qs:
        t0 = time.perf_counter()
        conn.request("GET", "/api/customers?q=" + quote(q), headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        elapsed = (time.perf_counter() - t0) * 1000
        if resp.status != 200:
            raise SystemExit(f"{q!r}: {resp.status} {body[:200]!r}")
        json.loads(body)
        by_kind.setdefault(kind, []).append(elapsed)
        by_kind.setdefault("all", []).append(elapsed)
    conn.close()
    return by_kind


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def explain(dsn: str, q: str) -> str:
    """The plan of the search for ``q`` as an admin (the server's SQL)."""
    from tornado_sse.customers import SEARCH_SQL, Search

    s = Search.of(q)
    params = {"match": s.match, "name_prefix": s.name_prefix, "word_prefix": s.word_prefix,
              "staff": None, "limit": 20}
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + SEARCH_SQL, params).fetchall()
    return "\n".join("    " + str(r[0]) for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--appointments", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=400, help="searches per token")
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"),
                        help="a PostgreSQL server to create the bench's database on "
                             "(default: $DATABASE_URL, else a throw-away embedded PostgreSQL)")
    args = parser.parse_args()
    rng = random.Random(23)
    with tempfile.TemporaryDirectory(prefix="tsse-customers-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        dsn = stack.enter_context(database(args.dsn, workdir))
        t0 = time.monotonic()
        facts = load(dsn, args.customers, args.appointments)
        print(f"loaded {args.customers:,} customers, {args.appointments:,} appointments over {STAFF} staff "
              f"in {time.monotonic() - t0:.1f} s; {facts}")
        proc, port = start_run_py(dsn, workdir, SECRET)

        def stop() -> None:
            proc.terminate()
            proc.wait(30)

        stack.callback(stop)
        tokens = {"admin": issue_token(SECRET, role="admin", ttl=3600),
                  "staff 1": issue_token(SECRET, role="staff", staff_id=1, ttl=3600)}
        qs = queries(args.queries, rng)
        timed(port, tokens["admin"], qs[:20])  # warm the connection pool and caches
        for who, token in tokens.items():
            by_kind = timed(port, token, qs)
            for kind, ms in by_kind.items():
                print(f"{who:8} {kind:12} n={len(ms):4}  p50 {statistics.median(ms):6.2f} ms  "
                      f"p90 {pct(ms, 90):6.2f}  p99 {pct(ms, 99):6.2f}  max {max(ms):6.2f}")
        for q in ("a", "berg"):
            print(f"plan for q={q!r} (admin):\n{explain(dsn, q)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
