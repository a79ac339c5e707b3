#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine, and nothing that is already there.
#
# Debian packages come from the machine's own apt configuration; Python tools go into a venv
# under /var/tmp so they survive between runs on the same machine. A second run with
# everything present only queries dpkg and the venv, so it finishes in about a second.
set -euo pipefail

VENV="${SLIPWAY_VENV:-/var/tmp/slipway-venv}"

# Packages the tests and scripts/test-images.sh / scripts/services.sh rely on.
DEB_PACKAGES=(
  busybox-static   # the busybox test image
  debootstrap      # the debian test image
  docker-registry  # local registry for push tests
  postgresql       # the PostgreSQL store tests
  chromium         # headless browser checks of the web UI
  age              # secrets tests
  openssl          # secrets tests (openssl enc compatibility), the certificates of the TLS test
  git jq curl ca-certificates
  libssl-dev pkg-config  # crates with native TLS
  python3-venv     # the venv that holds moto
  iptables         # the job networks' packet-filter rules (runner/src/netguard.rs) and their tests
  iproute2         # the link-local test server's network namespace
  gnupg            # signs the local APT repository of the addons.apt test (dpkg-deb builds its packages)
  groff-base       # renders the manual pages `slipway man` writes, in their test
  ngircd           # the IRC server notifications are sent to
)

log() { printf '[install-test-deps] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing_debs() {
  local pkg status
  for pkg in "${DEB_PACKAGES[@]}"; do
    status="$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)"
    [ "$status" = "install ok installed" ] || printf '%s\n' "$pkg"
  done
}

mapfile -t missing < <(missing_debs)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
  as_root apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# moto, the AWS API double, in its own venv (Debian's python3 has a stable path; the venv
# keeps pip installs out of the system interpreter).
if [ ! -x "$VENV/bin/moto_server" ]; then
  log "installing moto[server] into $VENV"
  py=/usr/bin/python3
  [ -x "$py" ] || py="$(command -v python3)"
  "$py" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'moto[server]'
fi

# pypiserver, the Python package index the pypi deploy uploads to (passlib for its htpasswd).
if [ ! -x "$VENV/bin/pypi-server" ] || ! "$VENV/bin/python" -c 'import passlib' 2>/dev/null; then
  log "installing pypiserver[passlib] into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check 'pypiserver[passlib]'
fi

# aiosmtpd, the SMTP sink email notifications are delivered to, in the same venv.
if ! "$VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  log "installing aiosmtpd into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check aiosmtpd
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

for tool in cargo-fmt cargo-clippy; do
  command -v "$tool" >/dev/null 2>&1 || log "warning: $tool not found; scripts/test will fail at that stage"
done
