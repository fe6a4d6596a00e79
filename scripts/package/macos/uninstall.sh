#!/bin/sh
# Stops and removes the Latchkey LaunchDaemon and /usr/local/bin/latchkey.
#
#   sudo ./uninstall.sh           keeps /Library/Application Support/Latchkey
#                                 (this device's key, certificate, enroll file)
#   sudo ./uninstall.sh --purge   removes it too: the device must enroll again
#
# DESTDIR=/some/root works on that root and runs no launchctl (tests).
set -eu

LABEL=com.latchkey.agent
DESTDIR=${DESTDIR:-}
purge=no
case "${1:-}" in
  '') ;;
  --purge) purge=yes ;;
  *) echo "uninstall.sh: unknown argument $1; use --purge to remove the state directory too" >&2; exit 2 ;;
esac
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
  echo "uninstall.sh: run it as root: sudo $0" >&2
  exit 1
fi

if [ -z "$DESTDIR" ]; then
  launchctl bootout "system/$LABEL" 2>/dev/null || true
fi
rm -f "$DESTDIR/Library/LaunchDaemons/$LABEL.plist" "$DESTDIR/usr/local/bin/latchkey"
if [ "$purge" = yes ]; then
  rm -rf "$DESTDIR/Library/Application Support/Latchkey"
  echo "removed the agent, its LaunchDaemon and its state"
else
  echo "removed the agent and its LaunchDaemon; kept $DESTDIR/Library/Application Support/Latchkey (--purge removes it)"
fi
