#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs the whole suite.
# Run from anywhere; CI runs it through .ci/run on a fresh machine as root.
set -euo pipefail
cd "$(dirname "$0")/.."

# The directory-server tests need real servers. As root (CI), install what is missing; otherwise
# the tests themselves fail with the command to run.
PACKAGES="slapd ldap-utils samba samba-ad-dc samba-ad-provision samba-dsdb-modules winbind openssl"
if [ "$(id -u)" = 0 ]; then
  missing=""
  for bin in /usr/sbin/slapd /usr/bin/ldapsearch /usr/sbin/samba /usr/bin/samba-tool /usr/bin/openssl; do
    [ -x "$bin" ] || missing=yes
  done
  dpkg -s samba-ad-provision samba-dsdb-modules >/dev/null 2>&1 || missing=yes
  if [ -n "$missing" ]; then
    echo "== installing test servers"
    # Installing must not start system daemons that would take the test ports.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
    fi
    apt-get update
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES
  fi
fi

echo "== formatting"
cargo fmt --all --check

echo "== lints"
cargo clippy --all-targets --locked -- -D warnings

echo "== tests"
cargo test --locked --all-targets
