#!/bin/sh
# docs/cli.md is generated from the --help texts: fail when it is out of date.
. "$(dirname "$0")/lib.sh"
CHECKS=$((CHECKS + 1))
sh "$TML_SOURCE_DIR/scripts/gen-cli-doc.sh" "$T" >"$W/cli.md"
if ! cmp -s "$W/cli.md" "$TML_SOURCE_DIR/docs/cli.md"; then
  fail "docs/cli.md is out of date: run scripts/gen-cli-doc.sh build/tinyml > docs/cli.md"
  diff "$TML_SOURCE_DIR/docs/cli.md" "$W/cli.md" | head -20 >&2
fi
# every command's help has an example
for cmd in $("$T" --help | awk '/^Commands:/{on=1; next} on && /^  [a-z]/{print $1} on && /^$/{on=0}'); do
  expect_exit 0 "$cmd --help" -- "$T" "$cmd" --help
  expect_grep "$W/out" "Example" "$cmd --help has examples"
done
finish
