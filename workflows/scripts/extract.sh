#!/bin/sh
# Writes a few fake rows for one source: $1 names it.
set -eu
for i in 1 2 3; do echo "$1,$i"; done > "$data_dir/$1.csv"
