#!/usr/bin/env bash
# Interleaved A/B of benchmarks/train_speed.py between two checkouts, same host, same hour.
#   bash benchmarks/ab_train_speed.sh OLD_CHECKOUT NEW_CHECKOUT [PAIRS] [ROW ...]
# Each pair runs every row once per side (which side goes first alternates); each run
# appends its JSON line to /tmp/ab_old.jsonl or /tmp/ab_new.jsonl and prints its table row.
# Example (issue 15's check): git worktree add /tmp/old 7da0098
#   bash benchmarks/ab_train_speed.sh /tmp/old . 2
set -euo pipefail
old=$(cd "$1" && pwd); new=$(cd "$2" && pwd); pairs=${3:-2}; shift $(( $# < 3 ? $# : 3 ))
rows=("$@"); [ ${#rows[@]} -gt 0 ] || rows=(ce-100-b32 ce-100-b128 ce-512-b128 bprmax-100-b128)
py=${PYTHON:-python}
for r in $(seq 1 "$pairs"); do
  for row in "${rows[@]}"; do
    if [ $((r % 2)) = 1 ]; then order="old new"; else order="new old"; fi
    for side in $order; do
      if [ "$side" = old ]; then dir=$old; else dir=$new; fi
      line=$(cd "$dir" && PYTHONPATH="$dir" "$py" benchmarks/train_speed.py --config "$row" \
        --repeat 1 --json-out "/tmp/ab_$side.jsonl" 2>&1 | grep -E "^$row " | tail -1)
      echo "pair $r $side: $line"
    done
  done
done
