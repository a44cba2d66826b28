#!/bin/sh
# Loads the parts. The first try fails on purpose to show _retry; the row count is stored
# for later tasks through $SPADE_STORE.
set -eu
marker="$data_dir/load.tried"
if [ ! -e "$marker" ]; then
  touch "$marker"
  echo "load: simulated transient failure" >&2
  exit 1
fi
rows=$(cat "$data_dir"/part*.csv | wc -l | tr -d ' ')
echo "rows=$rows" > "$SPADE_STORE"
echo "load: $rows rows"
