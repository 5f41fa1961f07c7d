#!/usr/bin/env bash
# Runs a command while every core is kept busy, to see how the test suite behaves on a
# loaded machine:  scripts/cpu_load.sh bash scripts/test.sh -q
#
# One busy loop per core (CPU_LOAD_WORKERS, default: nproc) at normal priority, each bounded
# by CPU_LOAD_MAX_SECONDS (default 3600): the burners stop when the command ends, when this
# script is interrupted, or at that limit, whichever comes first. The command's exit status
# is this script's.
set -uo pipefail

if [ $# -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

workers="${CPU_LOAD_WORKERS:-$(nproc)}"
max_seconds="${CPU_LOAD_MAX_SECONDS:-3600}"
case "$workers$max_seconds" in
    *[!0-9]*)
        echo "CPU_LOAD_WORKERS and CPU_LOAD_MAX_SECONDS must be whole numbers" >&2
        exit 2
        ;;
esac

burners=()
stop_burners() {
    if [ ${#burners[@]} -gt 0 ]; then
        kill "${burners[@]}" 2>/dev/null
        wait "${burners[@]}" 2>/dev/null
        burners=()
    fi
}
trap stop_burners EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for _ in $(seq "$workers"); do
    # Each burner is one process that ends by itself at the limit, even if this script is
    # killed with SIGKILL and never gets to stop it.
    (
        end=$((SECONDS + max_seconds))
        while [ "$SECONDS" -lt "$end" ]; do :; done
    ) &
    burners+=("$!")
done
echo "cpu_load: $workers busy loops (at most ${max_seconds} s) while: $*" >&2

"$@"
status=$?
stop_burners
exit "$status"
