#!/usr/bin/env bash
# Lint (ruff), type-check (mypy), then run the whole test suite: unit, integration (vcsim) and
# acceptance (real terraform + vcsim). Any of them failing fails the script.
#   bash scripts/test.sh [pytest args]
set -uo pipefail
cd "$(dirname "$0")/.."
echo "==> ruff check provider scripts tests"
.venv/bin/python -m ruff check provider scripts tests || exit $?
echo "==> mypy (configured in pyproject.toml)"
.venv/bin/python -m mypy || exit $?
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "no tests collected"; exit 1; fi
exit $rc
