#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test
# Latchkey: system packages (when run as root or with sudo), pnpm, and the
# workspace's dependencies from the lockfile. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=12.21.0
# Debian packages. To build: a C++ toolchain for the native addons
# (better-sqlite3, keytar — which links libsecret —, pkcs11js) and the tools
# the server's first run uses. With --test, also the real components the tests
# drive: a Secret Service (gnome-keyring on a private D-Bus) for the os
# keystore, SoftHSM2 and a software TPM (swtpm + tpm2-pkcs11) for the pkcs11
# keystore, OpenSSL's pkcs11 engine for TLS with a token key; dpkg-dev, rpm
# and lintian to build and check the Linux packages (scripts/package);
# qemu-user and arm64 Debian's C/C++ runtime to run the linux-arm64 agent
# here (binutils-aarch64-linux-gnu strips it).
PKGS=(openssl curl make g++ python3 pkg-config libsecret-1-dev)
TEST_PKGS=(dbus dbus-x11 gnome-keyring libsecret-tools softhsm2 opensc libengine-pkcs11-openssl
  swtpm swtpm-tools tpm2-abrmd libtss2-tcti-tabrmd0 libtss2-tcti-swtpm0 tpm2-tools libtpm2-pkcs11-1
  libtpm2-pkcs11-tools dbus-bin systemd binutils tar nginx libnginx-mod-stream haproxy libnss3-tools chromium firefox-esr
  dpkg-dev rpm lintian cpio adduser util-linux
  qemu-user libc6-arm64-cross libstdc++6-arm64-cross libatomic1-arm64-cross binutils-aarch64-linux-gnu)
if [ "${1:-}" = "--test" ]; then PKGS+=("${TEST_PKGS[@]}"); fi
# ansible-core (the builtin modules only) runs deploy/ansible/latchkey-agent.yml in its test.
if [ "${1:-}" = "--test" ]; then PKGS+=(ansible-core); fi
# wixl and msitools build and read the Windows MSI, Wine runs it; shellcheck checks the macOS install scripts.
if [ "${1:-}" = "--test" ]; then PKGS+=(wixl msitools wine wine64 shellcheck); fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else
    echo "setup: missing ${missing[*]}; install them (apt-get install ${missing[*]}) and run again" >&2; exit 1
  fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then echo "setup: Node.js >= 20 is required (found $(node --version 2>/dev/null || echo none))" >&2; exit 1; fi
if [ "$node_major" -eq 20 ]; then echo "setup: Node.js 20 reached its end of life in April 2026; Latchkey still runs and is tested on it, but use 22, 24 or 26 (the LTS)" >&2; fi

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version)" != "$PNPM_VERSION" ]; then
  echo "setup: installing pnpm $PNPM_VERSION"
  npm install -g "pnpm@$PNPM_VERSION" >/dev/null
fi

# Native addons (better-sqlite3) build from source with node-gyp. Use the
# machine's Node headers when they are installed (Debian's nodejs package has
# them) so nothing is downloaded.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then export npm_config_nodedir=/usr; fi

pnpm install --frozen-lockfile
