#!/bin/sh
# Records a failure where an operator will look: $1 names the session, $2 is the message.
# On a real host this would mail or page; here it appends to .spade/alerts.log.
set -eu
mkdir -p .spade
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) FAILED $1: $2" >> .spade/alerts.log
echo "alert: $1: $2" >&2
