#!/usr/bin/env bash
# Does the project still work on the newest versions its ranges allow? Builds a throw-away venv from the ranges
# (requirements-dev.in, newest releases), prints what changed against the lock, and runs the tests that compare our
# speed-ups and loaders with the stock libraries (marker "equivalence"), then the rest unless --equivalence-only.
# Not part of CI. If it passes, `bash scripts/lock.sh` makes those versions the lock.
#     bash scripts/try_newest.sh [--equivalence-only]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q --upgrade --upgrade-strategy eager -r requirements-dev.in
echo "Versions that differ from requirements-dev.txt:"
diff <(grep -v '^#' requirements-dev.txt | sort -f) <("$venv/bin/pip" freeze --exclude-editable | sort -f) | grep '^>' || echo "  none"
"$venv/bin/python" -m pytest -q -m equivalence
if [ "${1:-}" != "--equivalence-only" ]; then
    "$venv/bin/python" -m pytest -q -m "not equivalence"
fi
