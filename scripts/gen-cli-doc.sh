#!/bin/sh
# Regenerates docs/cli.md from the program's own --help texts, so the reference
# never drifts from the binary (tests/cli/test_docs.sh checks it is current).
#   scripts/gen-cli-doc.sh [path/to/tinyml] > docs/cli.md
set -eu
T=${1:-$(dirname "$0")/../build/tinyml}
cat <<'HEAD'
# Command-line reference

`tinyml <command> [options] [MODEL]`. Every command reads and writes one `.tmf`
model file, so commands chain in pipelines:

- MODEL `-` or omitted reads the model from stdin; `-o FILE` writes a file (atomically:
  temporary file + rename), `-o -` or no `-o` with a non-terminal stdout writes the
  model to stdout. A binary model is never written to a terminal.
- What `-o` (and every other output path) may be: a new or regular file (replaced
  atomically, keeping its mode); a symbolic link, which is followed (the file it
  points to is replaced, the link stays; a dangling link is refused); a character
  device or FIFO (`/dev/null`, a named pipe), written through. A directory, block
  device or socket is refused: tinyml never replaces anything but a regular file.
  Destinations are checked before the work starts.
- A failed write is an error, on stdout too (a full disk, a closed pipe or stdout):
  exit 1, never a silent success.
- Reports go to stdout as `--format table|md|csv|json` — or to stderr when the model
  itself goes to stdout. Progress bars and logs go to stderr (bars only on a terminal);
  `--quiet` silences them.
- Exit status: 0 success, 1 runtime or data error, 2 usage error, 130 after Ctrl-C.
  Messages read `tinyml CMD: error: ...`.
- `--seed N` makes every random choice repeatable (sample selection, shuffling,
  initialization, augmentation). Each pass records its UTC time in the model's
  history; set `SOURCE_DATE_EPOCH` (seconds) to pin it, and the same command
  writes the same bytes (wall-clock durations are then left out of the history).
- Datasets (`--data`, `--calib`): `fashion-mnist[:train|:test]`, `mnist[:split]`,
  `idx:IMAGES,LABELS`, `png:DIR` (a folder of per-class folders), `csv:FILE[:HxWxC]`;
  see [datasets.md](datasets.md).

This page is generated from the program's `--help` texts by
`scripts/gen-cli-doc.sh`; edit the help texts in `cli/cmd_*.c`, not this file.

HEAD
echo '## Commands'
echo
echo '```'
"$T" --help
echo '```'
for cmd in $("$T" --help | awk '/^Commands:/{on=1; next} on && /^  [a-z]/{print $1} on && /^$/{on=0}'); do
  echo
  echo "## $cmd"
  echo
  echo '```'
  "$T" "$cmd" --help
  echo '```'
done
