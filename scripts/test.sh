#!/usr/bin/env bash
# The one test command (README): install everything the tests need into
# .venv, run the lint and type gates, then the tests against a real
# PostgreSQL (embedded by default, DATABASE_URL for another). Extra
# arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

# The browser tests drive Debian's Chromium (no browser download), the
# scale-out test Debian's nginx (tests/test_nginx.py). Install what is missing
# when we may (root with apt); otherwise those tests skip and say so.
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
command -v npm >/dev/null 2>&1 || missing="$missing npm"  # the JavaScript client (clients/js)
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq || true
  for pkg in $missing; do
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null \
      || echo "test.sh: could not install $pkg; the tests that need it will skip" >&2
  done
fi

# The JavaScript client's tools (typescript, eventsource) from its
# package-lock.json, for tests/test_client_js.py (which skips without npm).
if command -v npm >/dev/null 2>&1; then
  (cd clients/js && npm ci --no-audit --no-fund --loglevel=error)
  # axe-core, for the calendar's accessibility test (tests/test_desk_screens.py).
  (cd tests/a11y && npm ci --no-audit --no-fund --loglevel=error)
fi

# Gates first (pyproject.toml): lint, then types (the package strict; tests
# and benchmarks with the override written down there).
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/mypy bench

exec .venv/bin/python -m pytest "$@"
