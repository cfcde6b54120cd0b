#!/usr/bin/env bash
# Stop the single-node test cluster started by tests/slurm/start_slurm.sh.
#
#   tests/slurm/stop_slurm.sh               # cancel all jobs, stop slurmd, slurmctld, slurmdbd, mariadb, munged
#   tests/slurm/stop_slurm.sh --keep-jobs   # do not scancel first (jobs stay in saved state)
#   tests/slurm/stop_slurm.sh --keep-munge  # leave munged (and mariadb) running
#
# Only processes named in the pid files written by start_slurm.sh are signalled.
set -uo pipefail

KEEP_JOBS=0
KEEP_MUNGE=0
for arg in "$@"; do
    case "$arg" in
        --keep-jobs) KEEP_JOBS=1 ;;
        --keep-munge) KEEP_MUNGE=1 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "stop_slurm: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { echo "[stop_slurm] $*"; }

pid_alive() {
    local pidfile=$1 name=$2 pid
    [ -s "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}

# stop PIDFILE NAME: SIGTERM, wait up to 15 s, then SIGKILL
stop() {
    local pidfile=$1 name=$2 pid
    if ! pid_alive "$pidfile" "$name"; then
        log "$name not running"
        return 0
    fi
    pid=$(tr -dc '0-9' <"$pidfile")
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
        sleep 0.25
    done
    log "$name did not exit after SIGTERM; sending SIGKILL"
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

if [ "$KEEP_JOBS" = 0 ] && pid_alive /run/slurmctld.pid slurmctld; then
    if [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
        log "cancelling all jobs"
        scancel --full --quiet --user=root 2>/dev/null || true
        squeue -h -o %i 2>/dev/null | xargs -r scancel --quiet 2>/dev/null || true
        for _ in $(seq 1 40); do
            [ -z "$(squeue -h -t R,CG -o %i 2>/dev/null)" ] && break
            sleep 0.25
        done
    fi
fi

stop /run/slurmd.pid slurmd
stop /run/slurmctld.pid slurmctld
stop /run/slurmdbd.pid slurmdbd
if [ "$KEEP_MUNGE" = 0 ]; then
    stop /run/mysqld/mysqld.pid mariadbd
    stop /run/munge/munged.pid munged
fi
log "done"
