#!/usr/bin/env bash
# The one test command (README): install everything the tests need into
# .venv and run them against a real PostgreSQL (embedded by default,
# DATABASE_URL for another). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'

# The browser tests drive Debian's Chromium (no browser download). Install it
# when missing and we may (root with apt); otherwise those tests skip and say so.
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "test.sh: could not install chromium; browser tests will skip" >&2
fi

exec .venv/bin/python -m pytest "$@"
