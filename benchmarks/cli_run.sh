#!/bin/bash
# One accuracy run through the command line, logged for benchmarks/collect_cli_runs.py:
#   benchmarks/cli_run.sh NAME TREE DATAFILE MODEL CONFIG [--set key=value ...]
# trains MODEL on DATAFILE (user histories: leave-one-out, early stopping on the
# second-to-last items) from the checkout TREE, then evaluates the last item of every
# history (full ranking, history excluded) with K = 5, 10, 20. Writes $RUNS/NAME.log
# (commands, host, every epoch line, the evaluation's JSON) and $RUNS/NAME.model;
# RUNS defaults to ./runs. PROTOCOL (default last-item) picks the evaluation protocol,
# e.g. PROTOCOL=samples for the SR-GNN session files (their test_samples.tsv).
name=$1; tree=$2; data=$3; model=$4; cfg=$5; shift 5
runs=$(realpath -m "${RUNS:-runs}"); mkdir -p "$runs"
cd "$tree" || exit 2
export PYTHONPATH=$tree
py=${PYTHON:-python}
log=$runs/$name.log
echo "# $(date -u) host: $(lscpu | grep 'Model name' | sed 's/  */ /g') tree $tree $(git -C "$tree" rev-parse --short HEAD)" > "$log"
echo "# seqrec train --train $data --model $model --config $cfg $* --out $runs/$name.model" >> "$log"
/usr/bin/time -f "train wall %e s" $py -m seqrec.cli train --train "$data" --model "$model" --config "$cfg" "$@" --out "$runs/$name.model" >> "$log" 2>&1
/usr/bin/time -f "eval wall %e s" $py -m seqrec.cli evaluate --model "$runs/$name.model" --test "$data" --protocol "${PROTOCOL:-last-item}" --k 5,10,20 --json >> "$log" 2>&1
echo "# done $(date -u)" >> "$log"
