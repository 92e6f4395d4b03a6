#!/bin/bash
# Run a command on a quiet host: every background `seqrec train` / `seqrec evaluate` of
# this machine is paused (SIGSTOP) for its duration and resumed (SIGCONT) afterwards, so
# a timing does not share the cores with long trainings. Usage: benchmarks/quiet.sh CMD...
pids=$(pgrep -f "seqrec(\.cli)? (train|evaluate|tune)" | tr "\n" " ")
kill -STOP $pids 2>/dev/null
sleep 2
echo "# quiet: stopped [$pids]; load $(cut -d' ' -f1-3 /proc/loadavg); $(lscpu | grep 'Model name' | sed 's/  */ /g'); $(date -u)"
"$@"
rc=$?
kill -CONT $pids 2>/dev/null
exit $rc
