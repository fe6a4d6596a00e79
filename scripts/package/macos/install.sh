#!/bin/sh
# Installs the Latchkey device agent on macOS from this directory (the
# latchkey-<version>-darwin-x64.tar.gz archive) and starts its LaunchDaemon.
#
#   sudo ./install.sh
#
# Puts bin/latchkey at /usr/local/bin/latchkey, ad-hoc signs it (codesign
# --sign -: the single executable's Node signature is broken by the build and
# macOS refuses to run an unsigned binary on Apple silicon and under some
# policies), writes /Library/LaunchDaemons/com.latchkey.agent.plist, creates
# /Library/Application Support/Latchkey (0700), and bootstraps the daemon.
# Zero-touch: drop /Library/Application Support/Latchkey/enroll.json and its
# token file first (or after: the daemon retries every 30 s), or run
#   sudo /usr/local/bin/latchkey enroll-file write --server URL --ca-fingerprint FP < token
# Running it again replaces the binary and the plist and restarts the daemon.
#
# DESTDIR=/some/root installs into that root instead and runs no launchctl or
# codesign (for staging and for the tests, which run it on Linux).
set -eu

LABEL=com.latchkey.agent
DESTDIR=${DESTDIR:-}
here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
bin_dir="$DESTDIR/usr/local/bin"
plist="$DESTDIR/Library/LaunchDaemons/$LABEL.plist"
state="$DESTDIR/Library/Application Support/Latchkey"
logs="$DESTDIR/Library/Logs"

if [ -z "$DESTDIR" ]; then
  if [ "$(uname -s)" != Darwin ]; then
    echo "install.sh: this installs on macOS; set DESTDIR=/path to stage the files elsewhere" >&2
    exit 2
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run it as root: sudo $0" >&2
    exit 1
  fi
fi
for f in bin/latchkey "$LABEL.plist"; do
  if [ ! -f "$here/$f" ]; then
    echo "install.sh: $here/$f is missing; unpack the whole archive and run install.sh from it" >&2
    exit 2
  fi
done

mkdir -p "$bin_dir" "$DESTDIR/Library/LaunchDaemons" "$logs"
mkdir -p "$state"
chmod 700 "$state"

# A copy beside the target, then a rename: a running daemon keeps its old file.
cp "$here/bin/latchkey" "$bin_dir/.latchkey.new"
chmod 755 "$bin_dir/.latchkey.new"
if [ -z "$DESTDIR" ]; then
  codesign --sign - --force "$bin_dir/.latchkey.new"
fi
mv -f "$bin_dir/.latchkey.new" "$bin_dir/latchkey"

# launchd refuses a plist that group or others can write, or that root does not own.
cp "$here/$LABEL.plist" "$plist.new"
chmod 644 "$plist.new"
if [ "$(id -u)" -eq 0 ]; then
  chown 0:0 "$plist.new" "$bin_dir/latchkey"
fi
mv -f "$plist.new" "$plist"

if [ -z "$DESTDIR" ]; then
  launchctl bootout "system/$LABEL" 2>/dev/null || true
  launchctl enable "system/$LABEL"
  launchctl bootstrap system "$plist"
  echo "installed /usr/local/bin/latchkey and started $LABEL (log: /Library/Logs/latchkey.log)"
else
  echo "installed into $DESTDIR (no launchctl, no codesign: DESTDIR is set)"
fi
