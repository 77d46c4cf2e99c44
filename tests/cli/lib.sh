# Helpers for the CLI end-to-end tests (sourced). $TINYML is the program under
# test; each test gets a fresh scratch directory $W.
set -u
: "${TINYML:?TINYML must point to the tinyml program}"
T=$TINYML
# TML_TEST_NAME: a test run as several ctest shards gets one scratch dir each
NAME=${TML_TEST_NAME:-$(basename "$0" .sh)}
W=${TML_TEST_TMPDIR:-/tmp/tinyml-test}/cli-$NAME
rm -rf "$W"
mkdir -p "$W"
FAILS=0
CHECKS=0
# 1 when the program under test is built with AddressSanitizer (10-20x slower:
# tests size their long runs by it)
ASAN=0
if grep -q "__asan" "$T" 2>/dev/null || ldd "$T" 2>/dev/null | grep -q libasan; then ASAN=1; fi

fail() {
  echo "FAIL: $*" >&2
  FAILS=$((FAILS + 1))
}

# expect_exit CODE DESCRIPTION -- command...   (stdout+stderr captured in $W/out)
expect_exit() {
  want=$1; desc=$2; shift 3
  CHECKS=$((CHECKS + 1))
  t0=$(date +%s)
  "$@" >"$W/out" 2>"$W/err"
  got=$?
  # the slow steps, so that the ctest log says where a test's time goes
  dt=$(($(date +%s) - t0))
  [ "$dt" -ge 5 ] && echo "${dt}s  $desc"
  if [ "$got" -ne "$want" ]; then
    fail "$desc: exit $got, expected $want"
    sed 's/^/    stderr: /' "$W/err" | head -5 >&2
    return 1
  fi
  return 0
}

# expect_grep FILE PATTERN DESCRIPTION
expect_grep() {
  CHECKS=$((CHECKS + 1))
  if ! grep -q -- "$2" "$1"; then
    fail "$3: '$2' not found in $(basename "$1")"
    head -5 "$1" | sed 's/^/    /' >&2
  fi
}

finish() {
  echo "$NAME: $CHECKS checks, $FAILS failures"
  [ "$FAILS" -eq 0 ]
  exit $?
}
