#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build and test
# Latchkey: system packages (when run as root or with sudo), pnpm, and the
# workspace's dependencies from the lockfile. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=12.21.0
# Commands the build and the tests use, and the Debian package that has each.
declare -A PKG=([openssl]=openssl [curl]=curl [make]=make [g++]=g++ [python3]=python3)

missing=()
for cmd in "${!PKG[@]}"; do command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG[$cmd]}"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else
    echo "setup: missing ${missing[*]}; install them (apt-get install ${missing[*]}) and run again" >&2; exit 1
  fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then echo "setup: Node.js >= 20 is required (found $(node --version 2>/dev/null || echo none))" >&2; exit 1; fi

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version)" != "$PNPM_VERSION" ]; then
  echo "setup: installing pnpm $PNPM_VERSION"
  npm install -g "pnpm@$PNPM_VERSION" >/dev/null
fi

# Native addons (better-sqlite3) build from source with node-gyp. Use the
# machine's Node headers when they are installed (Debian's nodejs package has
# them) so nothing is downloaded.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then export npm_config_nodedir=/usr; fi

pnpm install --frozen-lockfile
