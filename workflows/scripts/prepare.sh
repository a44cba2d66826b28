#!/bin/sh
# Fresh working directory for this session's data.
set -eu
rm -rf "$data_dir"
mkdir -p "$data_dir"
