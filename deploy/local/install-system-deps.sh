#!/usr/bin/env bash
# Installs what the local stack runs on when it is missing: Java 17+, Maven, redis-server,
# and for the dashboard's browser test (`make test`), Chromium with its WebDriver; and
# promtool, which checks the Prometheus rules and configuration (tests/deploy).
# Debian/Ubuntu only, and only as root; elsewhere it says what to install and fails.
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ "${TOKENBOARD_SKIP_BROWSER:-0}" != 1 ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
fi
need_promtool=0
command -v promtool >/dev/null 2>&1 || need_promtool=1
[ ${#missing[@]} -eq 0 ] && [ "$need_promtool" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  [ ${#missing[@]} -eq 0 ] || echo "missing: ${missing[*]} — install them (Debian: apt-get install ${missing[*]})" >&2
  [ "$need_promtool" -eq 0 ] || echo "missing: promtool — install it (Debian: apt-get install prometheus; or from a Prometheus 2.x release archive)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (apt-get)..."
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # The Debian package may start a system-wide redis on 6379; the stack runs its own.
  if command -v service >/dev/null 2>&1; then service redis-server stop >/dev/null 2>&1 || true; fi
fi
if [ "$need_promtool" -eq 1 ]; then
  # Only the promtool binary of Debian's prometheus package: installing the package would
  # also run a Prometheus server as a system service (on 9090, which compose uses).
  echo "installing promtool (from the Debian package prometheus) in /usr/local/bin..."
  deb_dir="$(mktemp -d)"
  chown _apt "$deb_dir" 2>/dev/null || true # apt downloads as _apt where that user exists
  (cd "$deb_dir" && apt-get download -qq prometheus)
  dpkg-deb --fsys-tarfile "$deb_dir"/prometheus_*.deb | tar -xO ./usr/bin/promtool >"$deb_dir/promtool"
  install -m 0755 "$deb_dir/promtool" /usr/local/bin/promtool
  rm -rf "$deb_dir"
fi
