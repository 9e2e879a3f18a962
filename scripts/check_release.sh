#!/usr/bin/env bash
# Release checks beyond the test suite. (The suite itself builds the release zip, or reuses an unchanged build,
# and drives it through Terraform: tests/acceptance/test_release.py, part of scripts/test.sh and CI.)
#   1. reproducible: two clean builds of the release zip (scripts/release.py) are equal byte for byte;
#   2. the Python package: sdist and wheel (python -m build), `twine check --strict`, the wheel in a fresh venv
#      and through pipx: `terraform-provider-vmdk --version` and `orphans --help`;
#   3. the release tests (tests/acceptance/test_release.py), incl. the GPG signature with a throwaway key.
# Needs python3 (and the .venv of scripts/setup.sh for step 3). Writes only under dist/.
#   bash scripts/check_release.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
work=dist/.check
rm -rf "$work"
mkdir -p "$work"

echo "==> 1. two clean builds of the release zip"
start=$(date +%s)
"$PY" scripts/release.py --out "$work/a" >"$work/a.log" 2>&1 || { cat "$work/a.log"; exit 1; }
echo "    first build: $(( $(date +%s) - start )) s"
"$PY" scripts/release.py --out "$work/b" >"$work/b.log" 2>&1 || { cat "$work/b.log"; exit 1; }
a=$(sha256sum "$work"/a/*.zip | cut -d' ' -f1)
b=$(sha256sum "$work"/b/*.zip | cut -d' ' -f1)
if [ "$a" != "$b" ]; then
  echo "NOT reproducible: $a != $b"
  exit 1
fi
echo "    equal: $a  $(basename "$work"/a/*.zip)"
rm -rf "$work/b"

echo "==> 2. sdist and wheel"
"$PY" -m venv "$work/tools"
"$work/tools/bin/python" -m pip install -q --disable-pip-version-check build twine pipx
"$work/tools/bin/python" -m build --outdir "$work/py" . >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
"$work/tools/bin/twine" check --strict "$work"/py/*
"$PY" -m venv "$work/fresh"
"$work/fresh/bin/python" -m pip install -q --disable-pip-version-check "$work"/py/*.whl
"$work/fresh/bin/terraform-provider-vmdk" --version
"$work/fresh/bin/terraform-provider-vmdk" orphans --help >/dev/null
PIPX_HOME="$PWD/$work/pipx" PIPX_BIN_DIR="$PWD/$work/pipx/bin" "$work/tools/bin/pipx" install "$work"/py/*.whl >/dev/null 2>&1
"$work/pipx/bin/terraform-provider-vmdk" --version
"$work/pipx/bin/terraform-provider-vmdk" orphans --help >/dev/null
echo "    wheel: fresh venv and pipx OK"

echo "==> 3. tests/acceptance/test_release.py"
.venv/bin/python -m pytest -q -p no:cacheprovider tests/acceptance/test_release.py
