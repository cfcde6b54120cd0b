#!/usr/bin/env bash
# Bring up a real single-node SLURM cluster on localhost (Debian 12 / bookworm,
# run as root, no systemd needed).  Idempotent: when everything already runs it
# only prints the state and exits.
#
#   tests/slurm/start_slurm.sh                 # munge + mariadb + slurmdbd + slurmctld + slurmd
#   SFBENCH_SLURM_ACCOUNTING=0 tests/slurm/start_slurm.sh   # no slurmdbd/mariadb (sacct won't work)
#   tests/slurm/start_slurm.sh --clean         # also wipe saved job state + accounting DB (fresh job ids)
#
# Environment knobs (all optional):
#   SFBENCH_SLURM_ACCOUNTING  1 (default): run slurmdbd + MariaDB so that `sacct`
#                             works (submitit reads job states with sacct);
#                             0: accounting_storage/none, sacct fails.
#   SFBENCH_SLURM_CPUS        CPUs advertised for the node (default: nproc).  A value
#                             above nproc oversubscribes the machine (config_overrides).
#   SFBENCH_SLURM_TIMEOUT     seconds to wait for each daemon / the idle node (default 60).
#   SFBENCH_SLURM_CLUSTER     ClusterName (default sfbench).
#
# Stop everything with tests/slurm/stop_slurm.sh.
set -euo pipefail

ACCOUNTING="${SFBENCH_SLURM_ACCOUNTING:-1}"
TIMEOUT="${SFBENCH_SLURM_TIMEOUT:-60}"
CLUSTER="${SFBENCH_SLURM_CLUSTER:-sfbench}"
CLEAN=0
for arg in "$@"; do
    case "$arg" in
        --clean) CLEAN=1 ;;
        --no-accounting) ACCOUNTING=0 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "start_slurm: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

T0=$(date +%s%N)
log()  { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '[start_slurm %3d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*"; }
die()  { printf '[start_slurm] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

SLURM_ETC=/etc/slurm
SLURM_CONF="$SLURM_ETC/slurm.conf"
DBD_CONF="$SLURM_ETC/slurmdbd.conf"
LOG_DIR=/var/log/slurm
CTLD_STATE=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
DBD_PID=/run/slurmdbd.pid
MUNGE_PID=/run/munge/munged.pid
MYSQL_PID=/run/mysqld/mysqld.pid
MYSQL_SOCK=/run/mysqld/mysqld.sock
DB_PASS=sfbench-slurm   # local throw-away test database, socket-only

# ---------------------------------------------------------------- helpers
# pid_alive PIDFILE NAME: true when PIDFILE names a live process whose comm is NAME
pid_alive() {
    local pidfile=$1 name=$2 pid
    [ -s "$pidfile" ] || return 1
    pid=$(tr -dc '0-9' <"$pidfile")
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 0.5 s
wait_for() {
    local secs=$1; shift 2   # $2: description (for readability of the call sites)
    local deadline=$(( $(date +%s) + secs ))
    while ! "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.5
    done
}

dump_logs() {
    local f
    for f in "$@"; do
        [ -f "$f" ] || continue
        echo "----- last 40 lines of $f -----" >&2
        tail -n 40 "$f" >&2
    done
}

fail_with_logs() {
    local msg=$1; shift
    echo "[start_slurm] ERROR: $msg" >&2
    dump_logs "$@"
    exit 1
}

# run a daemon fully detached from our stdio (so callers that capture output don't hang)
detach() { setsid "$@" </dev/null >/dev/null 2>&1 & }

# ---------------------------------------------------------------- 1. packages
PKGS=(munge slurmctld slurmd slurm-client)
[ "$ACCOUNTING" = 1 ] && PKGS+=(slurmdbd mariadb-server)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "[start_slurm] installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d (if any) keeps the packages from trying to start services
    apt-get update -qq >/dev/null || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/start_slurm_apt.log 2>&1 \
        || { tail -n 30 /tmp/start_slurm_apt.log >&2; die "apt-get install failed"; }
fi
SLURM_VERSION=$(dpkg-query -W -f='${Version}' slurmctld 2>/dev/null || echo '?')
log "packages ok (slurm $SLURM_VERSION, accounting=$ACCOUNTING)"

# ---------------------------------------------------------------- 2. config
NODE=$(hostname -s)
NPROC=$(nproc)
CPUS="${SFBENCH_SLURM_CPUS:-$NPROC}"
MEM_TOTAL_MB=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
# RealMemory must not exceed what slurmd detects (else the node is drained "Low RealMemory").
# Use MemTotal (stable across runs, unlike MemAvailable) minus a margin, rounded to 256 MiB.
MARGIN_MB=$(( MEM_TOTAL_MB / 10 )); [ "$MARGIN_MB" -gt 2048 ] && MARGIN_MB=2048
REAL_MEM=$(( (MEM_TOTAL_MB - MARGIN_MB) / 256 * 256 ))
[ "$REAL_MEM" -ge 256 ] || REAL_MEM=256
SLURMD_PARAMS=""
if [ "$CPUS" -gt "$NPROC" ]; then
    SLURMD_PARAMS="SlurmdParameters=config_overrides"
fi
if [ "$ACCOUNTING" = 1 ]; then
    ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
JobCompType=jobcomp/none"
else
    ACCT_LINES="AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none"
fi

mkdir -p "$SLURM_ETC" "$LOG_DIR" "$CTLD_STATE" "$SLURMD_SPOOL"
chown slurm:slurm "$LOG_DIR" "$CTLD_STATE"
chmod 755 "$LOG_DIR" "$CTLD_STATE" "$SLURMD_SPOOL"

NEW_CONF=$(cat <<EOF
# Generated by tests/slurm/start_slurm.sh -- single-node test cluster. Edits are overwritten.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CryptoType=crypto/munge
# requeued jobs wait cred_expire+1 s before they may start again (default 120 s)
AuthInfo=cred_expire=10
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true

StateSaveLocation=$CTLD_STATE
SlurmdSpoolDir=$SLURMD_SPOOL
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# no cgroups (container/VM friendly): process tracking via /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$ACCT_LINES

# CPUs are the consumable resource; memory is only checked against RealMemory,
# so several 1-CPU jobs/array tasks run side by side without --mem bookkeeping.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
$SLURMD_PARAMS

# fast turnaround for tests
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=2,bf_interval=5
ReturnToService=2
JobRequeue=1
MinJobAge=60
KillWait=5
OverTimeLimit=0
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
MessageTimeout=10
Waittime=0
MaxArraySize=10001

NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)

CONF_CHANGED=0
DBD_CHANGED=0
if [ ! -f "$SLURM_CONF" ] || [ "$(cat "$SLURM_CONF")" != "$NEW_CONF" ]; then
    printf '%s\n' "$NEW_CONF" >"$SLURM_CONF"
    chmod 644 "$SLURM_CONF"
    CONF_CHANGED=1
    log "wrote $SLURM_CONF (node $NODE, CPUs=$CPUS, RealMemory=$REAL_MEM MB)"
fi

if [ "$ACCOUNTING" = 1 ]; then
    NEW_DBD=$(cat <<EOF
# Generated by tests/slurm/start_slurm.sh
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
DebugLevel=info
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$DBD_PID
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
)
    if [ ! -f "$DBD_CONF" ] || [ "$(cat "$DBD_CONF")" != "$NEW_DBD" ]; then
        printf '%s\n' "$NEW_DBD" >"$DBD_CONF"
        DBD_CHANGED=1
        log "wrote $DBD_CONF"
    fi
    chown slurm:slurm "$DBD_CONF"; chmod 600 "$DBD_CONF"   # slurmdbd refuses other modes
fi

if [ "$CLEAN" = 1 ]; then
    log "--clean: stopping daemons and wiping saved state"
    "$(dirname "$0")/stop_slurm.sh" >/dev/null 2>&1 || true
    rm -rf "${CTLD_STATE:?}"/* "${SLURMD_SPOOL:?}"/*
    CONF_CHANGED=0; DBD_CHANGED=0   # everything is stopped anyway
fi

# ---------------------------------------------------------------- 3. munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating munge key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /etc/munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
chmod 700 /etc/munge /var/log/munge; chmod 400 /etc/munge/munge.key
chmod 755 /run/munge; chmod 711 /var/lib/munge

if pid_alive "$MUNGE_PID" munged; then
    log "munged already running (pid $(cat $MUNGE_PID))"
else
    log "starting munged"
    rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock "$MUNGE_PID"
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID" \
        || fail_with_logs "munged failed to start" /var/log/munge/munged.log
fi
munge_ok() { munge -n | unmunge >/dev/null; }
wait_for 15 munge munge_ok || fail_with_logs "munge -n | unmunge fails" /var/log/munge/munged.log
log "munge ok (munge -n | unmunge)"

# ---------------------------------------------------------------- 4. accounting (mariadb + slurmdbd)
if [ "$ACCOUNTING" = 1 ]; then
    MYSQL_CNF=/etc/mysql/mariadb.conf.d/99-sfbench-slurm.cnf
    if [ ! -f "$MYSQL_CNF" ]; then
        # values recommended by the slurmdbd docs; small buffer pool for a test box
        cat >"$MYSQL_CNF" <<'EOF'
[mysqld]
innodb_buffer_pool_size=256M
innodb_log_file_size=64M
innodb_lock_wait_timeout=900
max_allowed_packet=16M
skip-networking
EOF
    fi
    if pid_alive "$MYSQL_PID" mariadbd; then
        log "mariadb already running (pid $(cat $MYSQL_PID))"
    else
        log "starting mariadb"
        mkdir -p /run/mysqld; chown mysql:mysql /run/mysqld
        if [ ! -d /var/lib/mysql/mysql ]; then
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/tmp/start_slurm_mariadb_install.log 2>&1 \
                || fail_with_logs "mariadb-install-db failed" /tmp/start_slurm_mariadb_install.log
        fi
        mkdir -p /var/log/mysql; chown mysql:adm /var/log/mysql 2>/dev/null || true
        detach /usr/sbin/mariadbd --user=mysql --pid-file="$MYSQL_PID" --socket="$MYSQL_SOCK" \
            --log-error=/var/log/mysql/error.log
        wait_for "$TIMEOUT" mariadb mariadb-admin --socket="$MYSQL_SOCK" ping \
            || fail_with_logs "mariadb did not come up" /var/log/mysql/error.log
    fi
    if [ "$CLEAN" = 1 ]; then
        # job ids restart at 1 after wiping slurmctld state: drop the old job records too
        log "--clean: dropping the accounting database"
        mariadb --socket="$MYSQL_SOCK" -uroot -e 'DROP DATABASE IF EXISTS slurm_acct_db' \
            || die "could not drop slurm_acct_db"
    fi
    mariadb --socket="$MYSQL_SOCK" -uroot <<EOF || die "could not create the slurm database user"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
    log "mariadb ok"

    if pid_alive "$DBD_PID" slurmdbd && [ "$DBD_CHANGED" = 0 ]; then
        log "slurmdbd already running (pid $(cat $DBD_PID))"
    else
        if pid_alive "$DBD_PID" slurmdbd; then
            log "config changed: restarting slurmdbd"
            kill "$(cat $DBD_PID)"; wait_for 20 slurmdbd-stop bash -c "! kill -0 $(cat $DBD_PID) 2>/dev/null" || true
        fi
        log "starting slurmdbd"
        /usr/sbin/slurmdbd || fail_with_logs "slurmdbd failed to start" "$LOG_DIR/slurmdbd.log"
    fi
    wait_for "$TIMEOUT" slurmdbd sacctmgr -n -P show cluster \
        || fail_with_logs "slurmdbd not answering (sacctmgr show cluster)" "$LOG_DIR/slurmdbd.log"
    if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null || fail_with_logs "sacctmgr add cluster failed" "$LOG_DIR/slurmdbd.log"
        log "registered cluster '$CLUSTER' in slurmdbd"
    fi
    log "slurmdbd ok"
fi

# ---------------------------------------------------------------- 5. slurmctld + slurmd
stop_by_pidfile() {  # PIDFILE NAME
    local pid
    pid_alive "$1" "$2" || return 0
    pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
}

if [ "$CONF_CHANGED" = 1 ]; then
    if pid_alive "$CTLD_PID" slurmctld || pid_alive "$SLURMD_PID" slurmd; then
        log "config changed: restarting slurmctld and slurmd"
        stop_by_pidfile "$SLURMD_PID" slurmd
        stop_by_pidfile "$CTLD_PID" slurmctld
    fi
fi

# slurmctld refuses to start ("CLUSTER NAME MISMATCH") when ClusterName changed; this is a
# throw-away test cluster, so accept the new name.
if [ -f "$CTLD_STATE/clustername" ] && [ "$(cat "$CTLD_STATE/clustername")" != "$CLUSTER" ] \
        && ! pid_alive "$CTLD_PID" slurmctld; then
    log "ClusterName changed to $CLUSTER: removing $CTLD_STATE/clustername"
    rm -f "$CTLD_STATE/clustername"
fi

if pid_alive "$CTLD_PID" slurmctld; then
    log "slurmctld already running (pid $(cat $CTLD_PID))"
else
    log "starting slurmctld"
    rm -f "$CTLD_PID"
    /usr/sbin/slurmctld || fail_with_logs "slurmctld failed to start" "$LOG_DIR/slurmctld.log"
fi
wait_for "$TIMEOUT" slurmctld scontrol ping \
    || fail_with_logs "slurmctld not answering (scontrol ping)" "$LOG_DIR/slurmctld.log"
# scontrol ping exits 0 even when DOWN in some versions: check its text as well
scontrol ping | grep -q UP || fail_with_logs "slurmctld is DOWN: $(scontrol ping)" "$LOG_DIR/slurmctld.log"
log "slurmctld ok"

if pid_alive "$SLURMD_PID" slurmd; then
    log "slurmd already running (pid $(cat $SLURMD_PID))"
else
    log "starting slurmd"
    rm -f "$SLURMD_PID"
    /usr/sbin/slurmd || fail_with_logs "slurmd failed to start" "$LOG_DIR/slurmd.log"
fi
# `scontrol show slurmd` talks to the local slurmd itself (the node state in sinfo
# may still be the one slurmctld saved before slurmd re-registered)
wait_for "$TIMEOUT" slurmd scontrol show slurmd \
    || fail_with_logs "slurmd not answering (scontrol show slurmd)" "$LOG_DIR/slurmd.log"
log "slurmd ok"

# ---------------------------------------------------------------- 6. wait for an idle node
node_state() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1; }
deadline=$(( $(date +%s) + TIMEOUT ))
resumed=0
while :; do
    st=$(node_state || true)
    case "$st" in
        idle|mixed|allocated|completing) break ;;
        *drain*|down|fail*)
            if [ "$resumed" -lt 3 ]; then
                log "node $NODE is '$st' ($(sinfo -h -N -n "$NODE" -o '%E' 2>/dev/null)); resuming"
                scontrol update nodename="$NODE" state=resume 2>/dev/null || true
                resumed=$((resumed + 1))
            fi ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
        sinfo -N -l >&2 || true
        fail_with_logs "node $NODE not idle after ${TIMEOUT}s (state '${st:-?}')" \
            "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log"
    fi
    sleep 0.5
done

log "cluster up: node $NODE is $st"
sinfo
