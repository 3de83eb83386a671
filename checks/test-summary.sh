#!/usr/bin/env bash
# Sums cargo test's "test result:" lines from a log: prints the totals and
# fails when no test ran (a suite that silently ran nothing must not pass).
#   checks/test-summary.sh LABEL LOGFILE
set -euo pipefail
label=$1 log=$2
read -r passed failed ignored < <(awk '
    /^test result: / {
        for (i = 1; i <= NF; i++) {
            if ($(i+1) ~ /^passed/)  p += $i
            if ($(i+1) ~ /^failed/)  f += $i
            if ($(i+1) ~ /^ignored/) g += $i
        }
    }
    END { print p + 0, f + 0, g + 0 }' "$log")
echo "$label: $passed passed, $failed failed, $ignored ignored"
if [ "$passed" -eq 0 ]; then
    echo "$label: no test ran" >&2
    exit 1
fi
[ "$failed" -eq 0 ]
