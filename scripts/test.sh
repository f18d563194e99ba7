#!/usr/bin/env bash
# The one test command of sysblocks. On a fresh Debian/Ubuntu machine it:
#   1. installs redis-server and redis-tools when missing (apt-get, as root;
#      otherwise it prints the install command and stops),
#   2. starts a throwaway standalone Redis and a 3-master Redis Cluster on free
#      loopback ports (scripts/redis.sh) and exports REDIS_URL and
#      REDIS_CLUSTER_NODES for the tests,
#   3. checks that rustc is the declared rust-version, then runs fmt,
#      clippy (all features, then every feature set on its own, with
#      cargo-hack, which it installs when missing), the tests (doc tests and
#      every README's examples included), the docs, every crate's loom
#      suite, a build of every bench (test profile), `cargo package` and `cargo publish
#      --dry-run` of every publishable crate, and cargo-deny (installed when
#      missing) on licenses, bans and sources,
#   4. stops the servers it started, on failure too, and prints a summary.
# It exits non-zero when any step failed.
set -uo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# --- 1. Redis ------------------------------------------------------------
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing redis-server and redis-tools"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq redis-server redis-tools >/dev/null \
      || { echo "test.sh: apt-get could not install redis-server redis-tools" >&2; exit 1; }
    # Debian starts the packaged service; our tests use their own servers.
  else
    cat >&2 <<'MSG'
test.sh: redis-server and redis-cli are needed and were not found on PATH.
Install them, then run scripts/test.sh again:

    sudo apt-get install -y redis-server redis-tools

MSG
    exit 1
  fi
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo is not on PATH; install Rust (rustup) with the clippy and rustfmt components." >&2
  exit 1
fi

# --- 2. Servers ----------------------------------------------------------
say "starting Redis (standalone + 3-master cluster) on loopback"
servers=$(scripts/redis.sh start) || { echo "test.sh: could not start Redis" >&2; exit 1; }
eval "$servers"
testlog=$(mktemp "${TMPDIR:-/tmp}/sysblocks-test-log.XXXXXX")
trap 'scripts/redis.sh stop "$SYSBLOCKS_REDIS_DIR" 2>/dev/null; rm -f "$testlog"' EXIT
trap 'exit 130' INT TERM
echo "REDIS_URL=$REDIS_URL"
echo "REDIS_CLUSTER_NODES=$REDIS_CLUSTER_NODES"

# --- 3. Steps ------------------------------------------------------------
target=${CARGO_TARGET_DIR:-$root/target}
names=()
results=()
failed=0

step() {
  local name=$1; shift
  say "$name"
  local start=$SECONDS
  if "$@"; then
    results+=("PASS  $name ($((SECONDS - start)) s)")
  else
    results+=("FAIL  $name ($((SECONDS - start)) s)")
    failed=$((failed + 1))
  fi
  names+=("$name")
}

loom_suites() {
  local dir pkg status=0 any=0
  for dir in */; do
    dir=${dir%/}
    [ -f "$dir/tests/loom.rs" ] || continue
    any=1
    pkg=sysblocks-$dir
    echo "-- loom: $pkg"
    RUSTFLAGS="--cfg sysblocks_loom" LOOM_MAX_PREEMPTIONS=2 \
      cargo test --release -p "$pkg" --test loom --target-dir "$target/loom" 2>&1 \
      | tee -a "$testlog" || status=1
  done
  [ "$any" = 1 ] || echo "no crate has a loom suite yet"
  return $status
}

# Every feature set of every crate builds, lints and documents on its own
# (no import or intra-doc link may lean on --all-features). cargo-hack is
# installed into the target dir's tools folder, so CI's cache keeps it.
feature_sets() {
  local tools="$target/tools"
  if [ ! -x "$tools/bin/cargo-hack" ]; then
    cargo install cargo-hack --locked --version 0.6.46 --root "$tools" --quiet || return 1
  fi
  PATH="$tools/bin:$PATH" cargo hack clippy --workspace --feature-powerset --no-dev-deps \
    -- -D warnings || return 1
  PATH="$tools/bin:$PATH" RUSTDOCFLAGS="-D warnings" \
    cargo hack doc --workspace --each-feature --no-dev-deps --no-deps
}

# The crates a user can depend on: every member whose manifest does not say
# `publish = false`.
publishable() {
  local manifest
  for manifest in */Cargo.toml examples/*/Cargo.toml; do
    grep -q '^publish = false' "$manifest" && continue
    sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n 1
  done
}

# Each publishable crate packages on its own (README, license files, Lua
# scripts and the charts its guide embeds are in the package, and the
# package builds outside the workspace against its siblings' packages), and
# a publish would be accepted up to the upload.
packaging() {
  local args=() name
  for name in $(publishable); do args+=(-p "$name"); done
  echo "publishable: ${args[*]}"
  cargo package --allow-dirty "${args[@]}" || return 1
  cargo publish --dry-run --allow-dirty "${args[@]}"
}

# Licenses, banned and duplicated crates, and sources, with the policy in
# deny.toml; these work offline. Advisories need the RustSec database, which
# is fetched from GitHub: checked when it can be reached, and said so when
# it cannot.
supply_chain() {
  local tools="$target/tools"
  if [ ! -x "$tools/bin/cargo-deny" ]; then
    cargo install cargo-deny --locked --version 0.20.2 --root "$tools" --quiet || return 1
  fi
  PATH="$tools/bin:$PATH" cargo deny --all-features check licenses bans sources || return 1
  if PATH="$tools/bin:$PATH" timeout 120 cargo deny fetch db >/dev/null 2>&1; then
    PATH="$tools/bin:$PATH" cargo deny --all-features check advisories
  else
    echo "advisories: NOT CHECKED, the RustSec advisory database could not be fetched from here"
  fi
}

# rust-version in Cargo.toml names the toolchain the checks really use: this
# run's rustc must be that version, or rustup must have it for a check.
rust_version() {
  local declared actual toolchain
  declared=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
  actual=$(rustc --version | awk '{print $2}')
  case $actual in
    "$declared" | "$declared".*)
      echo "rustc $actual is the declared rust-version $declared: every step below builds with it"
      return 0 ;;
  esac
  toolchain=$(rustup toolchain list 2>/dev/null | awk '{print $1}' | grep "^$declared" | head -n 1)
  if [ -z "$toolchain" ]; then
    echo "rust-version is $declared but rustc is $actual and rustup has no $declared toolchain:" >&2
    echo "install it (rustup toolchain install $declared) or change rust-version in Cargo.toml" >&2
    return 1
  fi
  echo "checking the workspace with the declared toolchain $toolchain"
  cargo +"$toolchain" check --workspace --all-features --all-targets
}

step "rust-version (the declared toolchain builds)" rust_version
step "cargo fmt --check" cargo fmt --all -- --check
step "cargo clippy -D warnings" cargo clippy --workspace --all-targets --all-features -- -D warnings
step "feature sets (cargo-hack: clippy on every set, docs on each feature)" feature_sets
run_tests() { cargo test --workspace --all-features 2>&1 | tee -a "$testlog"; }
step "cargo test (unit, integration, doc)" run_tests
step "cargo doc (warnings denied)" env RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps
step "loom suites" loom_suites
# Every bench builds (their code compiles and links against the peers),
# in the test profile, whose dependencies the test step above has built:
# a release build of them all would add minutes to a cold run, and
# scripts/bench.sh builds them optimised when they are measured.
step "benches build (test profile)" cargo test --workspace --all-features --benches --no-run
step "cargo package + publish --dry-run (publishable crates)" packaging
step "install lines in a new project (scripts/try-install.sh)" scripts/try-install.sh
step "cargo deny (licenses, bans, sources; advisories when reachable)" supply_chain

# --- 4. Summary ----------------------------------------------------------
scripts/redis.sh stop "$SYSBLOCKS_REDIS_DIR"
say "summary"
for r in "${results[@]}"; do echo "  $r"; done
echo "steps: $(( ${#names[@]} - failed )) of ${#names[@]} passed"
# Tests counted over every `test result:` line of cargo test and loom.
read -r tests_passed tests_failed < <(awk '/^test result:/ {
    for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i }
  } END { print p + 0, f + 0 }' "$testlog")
echo "tests: $tests_passed passed, $tests_failed failed"
[ "$failed" = 0 ]
