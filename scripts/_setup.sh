# Shared set-up for scripts/demo and scripts/test (sourced, not run).
# Installs what is missing on a Debian machine (as root), makes .venv and installs mason in it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

APT_PACKAGES=(
  python3 python3-venv python3-pip git ca-certificates
  containerd runc busybox-static graphviz docker-registry
  golang-github-containerd-containerd-dev containernetworking-plugins iptables
  skopeo umoci iproute2 util-linux openssh-client qemu-user-static file chromium debootstrap gpg
  golang-github-docker-docker-dev golang-github-tonistiigi-fsutil-dev golang-go
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "error: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  echo ">> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The multi-platform tests (issue 16) take an arm64 busybox from Debian's archive with
# `apt-get download busybox-static:arm64`: apt needs the arm64 package lists for that.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  if [ "$(id -u)" != 0 ]; then
    echo "error: the tests need dpkg's arm64 architecture (run as root, or dpkg --add-architecture arm64)" >&2
    exit 1
  fi
  echo ">> dpkg --add-architecture arm64"
  dpkg --add-architecture arm64
  apt-get update -qq
fi

PY="${MASON_PYTHON:-python3}"
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then PY=/usr/bin/python3; fi
if [ ! -x .venv/bin/python ]; then
  echo ">> creating .venv"
  "$PY" -m venv .venv
fi
STAMP=.venv/.mason-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo ">> installing mason into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
# The API stubs are generated from Debian's .proto files once per input set, at install rather
# than on the first build (never committed).
if [ ! -f .venv/.mason-stubs ] || [ "$STAMP" -nt .venv/.mason-stubs ]; then
  echo ">> generating API stubs"
  .venv/bin/python -c 'from mason.backends.containerd import _protos; from mason.protos import buildkit; _protos.load(); buildkit.load()'
  touch .venv/.mason-stubs
fi
# The compiled code of the methods dataclasses generate, kept next to the bytecode
# (mason/_codecache.py) so that a process compiles none of it, PYTHONDONTWRITEBYTECODE or not.
if ! ls mason/__pycache__/dataclass-code.*.marshal >/dev/null 2>&1; then
  echo ">> caching dataclass code"
  .venv/bin/python -c 'import mason._codecache as c; c.prime()' >/dev/null
fi
