#!/bin/sh
# Creates the demo users once, then runs Prosody in the foreground.
set -e
mkdir -p /run/prosody && chown prosody:prosody /run/prosody
for u in alice:alicepw bob:bobpw; do
  name=${u%%:*}; pw=${u#*:}
  prosodyctl register "$name" xmpp.test "$pw" 2>/dev/null || true
done
exec runuser -u prosody -- prosody -F
