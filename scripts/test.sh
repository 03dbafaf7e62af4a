#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs the whole suite.
# Run from anywhere; CI runs it through .ci/run on a fresh machine as root.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real servers the tests start on loopback. Each engineer's packages stay on their own line.
MAIL_PACKAGES="dovecot-imapd isync"
PACKAGES="$MAIL_PACKAGES"
need_install=0
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || need_install=1
command -v mbsync >/dev/null 2>&1 || need_install=1
if [ "$need_install" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    # Installing must not start the system's own servers on the standard ports.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
    fi
    echo "== installing test servers: $PACKAGES"
    apt-get update
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES
  else
    echo "warning: not root, cannot install $PACKAGES; the server tests will fail and say how to install them" >&2
  fi
fi

echo "== formatting"
cargo fmt --all --check

echo "== lints"
cargo clippy --all-targets --locked -- -D warnings

echo "== tests"
cargo test --locked --all-targets
