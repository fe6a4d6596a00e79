#!/bin/sh
# Jamf Pro policy script: writes the Latchkey enrollment token file that the
# com.latchkey.agent configuration profile's "tokenFile" names, mode 0600,
# then restarts the agent so it enrolls now. Parameter 4 is the token (Jamf
# passes $1-$3: mount point, computer name, user name). LATCHKEY_DIR is for
# tests; Jamf runs this as root with the default.
set -eu
token="${4:-}"
dir="${LATCHKEY_DIR:-/Library/Application Support/Latchkey}"
if [ -z "$token" ]; then
  echo "write-enroll-token: parameter 4 (the enrollment token) is empty; set it in the policy's script payload" >&2
  exit 2
fi
if [ "${#token}" -gt 4096 ]; then
  echo "write-enroll-token: parameter 4 is ${#token} characters; an enrollment token is far shorter" >&2
  exit 2
fi
mkdir -p "$dir"
chmod 755 "$dir"
umask 077
printf '%s\n' "$token" > "$dir/enroll-token.tmp"
mv -f "$dir/enroll-token.tmp" "$dir/enroll-token"
echo "write-enroll-token: wrote $dir/enroll-token"
if command -v launchctl >/dev/null 2>&1; then launchctl kickstart -k system/com.latchkey.agent 2>/dev/null || true; fi
