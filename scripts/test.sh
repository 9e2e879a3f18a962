#!/usr/bin/env bash
# Run the whole test suite: unit, integration (vcsim) and acceptance (real terraform + vcsim).
#   bash scripts/test.sh [pytest args]
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "no tests collected"; exit 1; fi
exit $rc
