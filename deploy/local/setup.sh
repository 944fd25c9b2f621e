#!/usr/bin/env bash
# Install what cx-journeys needs on a Debian bookworm machine (run as root); quick when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

# chromium: the HTML report is checked in headless Chromium.
# A JRE runs the Apache Kafka broker; Maven fetches it from Maven Central (deploy/kafka/pom.xml).
APT_PACKAGES=(clickhouse-server clickhouse-client prometheus prometheus-alertmanager chromium openjdk-17-jre-headless maven)
VENV=.venv

missing=()
for cmd in clickhouse-server clickhouse-client prometheus promtool prometheus-alertmanager amtool chromium gcc java mvn; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
py=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 \
     && "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    py=$(command -v "$candidate"); break
  fi
done

if [ ${#missing[@]} -gt 0 ] || [ -z "$py" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing ${missing[*]:-python3.11 with venv}; run 'make setup' as root (apt-get)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Debian starts services on install; the local stack runs its own copies on chosen ports,
  # so keep the packaged ones from grabbing 9000/9090/9093 meanwhile.
  policy=/usr/sbin/policy-rc.d
  had_policy=0; [ -e "$policy" ] && had_policy=1
  [ $had_policy = 1 ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; }
  trap '[ $had_policy = 1 ] || rm -f "$policy"' EXIT
  echo "setup: apt-get install ${APT_PACKAGES[*]} python3 python3-venv"
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}" python3 python3-venv python3-dev gcc libc6-dev ca-certificates
  # A package's own init script may still have started a service: stop the packaged ones.
  for svc in clickhouse-server prometheus prometheus-alertmanager; do
    service "$svc" stop >/dev/null 2>&1 || true
  done
  [ -n "$py" ] || py=$(command -v python3.11 || command -v python3)
fi

# Apache Kafka and its dependencies from Maven Central, once: Maven keeps the downloads in ~/.m2 and the jars
# are copied to build/kafka-<version>/lib; the stamp names the POM's hash, so an unchanged POM runs no Maven.
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' deploy/kafka/pom.xml)
kafka_stamp="build/kafka-$kafka_version/.fetched-$(sha256sum deploy/kafka/pom.xml | cut -c1-16)"
if [ ! -e "$kafka_stamp" ]; then
  echo "setup: fetching Apache Kafka $kafka_version from Maven Central"
  rm -rf "build/kafka-$kafka_version"
  mvn -B -q -f deploy/kafka/pom.xml dependency:copy-dependencies
  touch "$kafka_stamp"
fi

stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $py"
  "$py" -m venv "$VENV"
fi
if [ ! -e "$stamp" ]; then
  echo "setup: installing cx-journeys and its tools into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[dev]'
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi

# The native core (core/, Rust with PyO3, built by maturin into the venv): rebuilt only when a file of the
# crate changed (the stamp names their hash) or the module does not import; cargo keeps core/target between
# builds, so a change rebuilds only this crate.
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: the native core needs Rust's cargo (rustup.rs); none found" >&2; exit 1; }
core_hash=$( (cd core && git ls-files -co --exclude-standard 2>/dev/null || find . -type f -not -path './target/*') \
  | LC_ALL=C sort | (cd core && xargs sha256sum) | sha256sum | cut -c1-16)
core_stamp="$VENV/.core-$core_hash"
if [ ! -e "$core_stamp" ] || ! "$VENV/bin/python" -c 'import cx_core' 2>/dev/null; then
  echo "setup: building the native core (cargo, release)"
  VIRTUAL_ENV="$PWD/$VENV" PATH="$PWD/$VENV/bin:$PATH" "$VENV/bin/maturin" develop --release -q -m core/Cargo.toml
  rm -f "$VENV"/.core-*
  touch "$core_stamp"
fi
