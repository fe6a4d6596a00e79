#!/usr/bin/env bash
# Runs a command with the `os` keystore working on a machine without a desktop
# session (CI, SSH, containers): a private D-Bus session bus (dbus-run-session)
# and a gnome-keyring whose login keyring is created and unlocked.
#
#   scripts/with-keyring.sh node --test agent/dist/keystore/os-keystore.test.js
#   LATCHKEY_KEYRING_DIR=~/.local/share/latchkey-keyring LATCHKEY_KEYRING_PASSWORD=… scripts/with-keyring.sh latchkey …
#
# LATCHKEY_KEYRING_DIR       where the keyring files live; default a temp dir
#                            removed on exit (the keys vanish with it).
# LATCHKEY_KEYRING_PASSWORD  the login keyring password (default "latchkey"; it
#                            encrypts the keyring file, so set a real one when
#                            LATCHKEY_KEYRING_DIR keeps keys).
# Needs: dbus-daemon (dbus-run-session), dbus-bin (dbus-send), gnome-keyring.
set -euo pipefail

if [[ $# -eq 0 ]]; then
  echo "usage: $0 COMMAND [ARG…]" >&2
  exit 64
fi

if [[ "${LATCHKEY_WITH_KEYRING_INNER:-}" != 1 ]]; then
  for p in dbus-run-session dbus-send gnome-keyring-daemon; do
    command -v "$p" >/dev/null || { echo "$0: $p not found: apt-get install dbus-daemon dbus-bin gnome-keyring" >&2; exit 69; }
  done
  export LATCHKEY_WITH_KEYRING_INNER=1
  exec dbus-run-session -- "$0" "$@"
fi
unset LATCHKEY_WITH_KEYRING_INNER

tmp=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-keyring.XXXXXX")
gkd_pid=
cleanup() {
  if [[ -n "$gkd_pid" ]]; then kill "$gkd_pid" 2>/dev/null || true; wait "$gkd_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# gnome-keyring keeps its files in $XDG_DATA_HOME/keyrings and its control socket in $XDG_RUNTIME_DIR/keyring.
data="${LATCHKEY_KEYRING_DIR:-$tmp/data}"
mkdir -p "$data" "$tmp/run"
chmod 700 "$tmp/run"
if [[ -z "${XDG_RUNTIME_DIR:-}" || ! -w "${XDG_RUNTIME_DIR:-/nonexistent}" ]]; then export XDG_RUNTIME_DIR="$tmp/run"; fi

# --unlock reads the password on stdin until EOF, creating the login keyring if there is none.
printf '%s' "${LATCHKEY_KEYRING_PASSWORD:-latchkey}" |
  XDG_DATA_HOME="$data" gnome-keyring-daemon --foreground --unlock --components=secrets >/dev/null &
gkd_pid=$!

# Wait until our daemon owns the name (NameHasOwner activates nothing): an
# earlier call to org.freedesktop.secrets would make the bus start a second,
# locked daemon from its .service file.
owned=
for _ in $(seq 200); do
  if dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
      org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q 'boolean true'; then
    owned=1
    break
  fi
  kill -0 "$gkd_pid" 2>/dev/null || break
  sleep 0.05
done
[[ -n "$owned" ]] || { echo "$0: gnome-keyring-daemon did not register on the session bus" >&2; exit 70; }
dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets/collection/login \
  org.freedesktop.DBus.Properties.Get string:org.freedesktop.Secret.Collection string:Locked 2>/dev/null | grep -q 'boolean false' ||
  { echo "$0: the login keyring is not unlocked (wrong LATCHKEY_KEYRING_PASSWORD for $data?)" >&2; exit 70; }

"$@"
