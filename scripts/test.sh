#!/usr/bin/env bash
# Everything a fresh Debian/Ubuntu machine needs to run the test suite, then the suite itself:
# the Debian packages the tests drive (espeak-ng makes speech, sox checks audio, chromium runs the browser tests),
# a venv with the locked versions (requirements-dev.txt), the linter and the formatter's check (ruff, configured in
# pyproject.toml), and pytest. Extra arguments go to pytest.
#     bash scripts/test.sh            # everything
#     bash scripts/test.sh -m "not slow and not browser"     # the fast core, about a minute
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in espeak-ng sox chromium; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    sudo=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -r requirements-dev.txt

ruff check .
ruff format --check .
python -m pytest -q "$@"
