#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs the whole suite.
# Run from anywhere; CI runs it through .ci/run on a fresh machine as root.
set -euo pipefail
cd "$(dirname "$0")/.."

# == server packages the tests start (they fail, never skip, without them).
# One line per package keeps additions from different changes easy to merge.
packages=()
command -v openssl >/dev/null 2>&1 || packages+=(openssl) # test certificates: servers' TLS
[ -x /usr/sbin/slapd ] || packages+=(slapd) # OpenLDAP: tests/ldap_openldap.rs
command -v ldapsearch >/dev/null 2>&1 || packages+=(ldap-utils) # loading and editing test data
[ -x /usr/sbin/samba ] || packages+=(samba samba-ad-dc) # Samba AD DC: tests/ldap_samba.rs
command -v samba-tool >/dev/null 2>&1 || packages+=(samba-ad-provision)
dpkg -s samba-ad-provision samba-dsdb-modules winbind >/dev/null 2>&1 || packages+=(samba-ad-provision samba-dsdb-modules winbind)
command -v radicale >/dev/null 2>&1 || packages+=(radicale) # CalDAV/CardDAV: tests/radicale.rs
[ -x /usr/sbin/dovecot ] || packages+=(dovecot-imapd) # IMAP with a master user: tests/imap.rs
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || packages+=(postgresql) # the shared state: src/state/tests.rs
command -v mbsync >/dev/null 2>&1 || packages+=(isync) # the mail-copy benchmark's peer: tests/bench_mail.rs
[ -x /usr/bin/chromium ] || packages+=(chromium) # the HTML report in a real browser: tests/report.rs
command -v pdftotext >/dev/null 2>&1 || packages+=(poppler-utils) # the printed report's text: tests/report.rs
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${packages[*]}"
    # Installing a server must not start the system's copy of it on the ports tests use.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
    fi
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
  else
    echo "== missing ${packages[*]}: run as root, or apt-get install them; their tests will fail" >&2
  fi
fi

# A clean run gains nothing from incremental caches, and they would double what it writes to disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

echo "== formatting"
cargo fmt --all --check

echo "== lints"
cargo clippy --all-targets --locked -- -D warnings

echo "== tests"
cargo test --locked --all-targets
