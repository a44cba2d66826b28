#!/bin/sh
# One partition ($i comes from loop>'s _export): joins the extracted rows into a part file.
set -eu
cat "$data_dir/orders.csv" "$data_dir/customers.csv" | sed "s/^/part$i,/" > "$data_dir/part$i.csv"
