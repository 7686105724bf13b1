#!/usr/bin/env bash
# A Docker engine for `make image-cpu` and `make test-containers` on a machine without systemd (CI, this project's
# machines): Debian's docker.io (dockerd 20.10, classic BuildKit), docker-compose 1.29 and debootstrap.
#   tools/docker-engine.sh start   install what is missing; start dockerd unless an engine already answers
#   tools/docker-engine.sh stop    stop the dockerd that `start` started (its pid file), and nothing else
# State in $STATE_DIR (default .cache/docker-engine): dockerd.pid, dockerd.log.
set -euo pipefail
DOCKER=${DOCKER:-/usr/bin/docker}
STATE_DIR=${STATE_DIR:-.cache/docker-engine}
PID_FILE=$STATE_DIR/dockerd.pid
LOG=$STATE_DIR/dockerd.log

ours() {  # the pid in our pid file, when that process is still a dockerd
    local pid
    [ -s "$PID_FILE" ] || return 1
    pid=$(cat "$PID_FILE")
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] && echo "$pid"
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

start() {
    if ! [ -x /usr/sbin/dockerd ] || ! [ -x "$DOCKER" ] || ! command -v docker-compose >/dev/null \
        || ! command -v debootstrap >/dev/null; then
        echo "docker-engine: installing docker.io docker-compose debootstrap"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose debootstrap >/dev/null
    fi
    if "$DOCKER" info >/dev/null 2>&1; then
        if pid=$(ours); then
            echo "docker-engine: dockerd $pid (started by make docker-engine) answers"
        else
            echo "docker-engine: an engine already answers ($("$DOCKER" version -f '{{.Server.Version}}')); not ours to stop"
        fi
        return 0
    fi
    mkdir -p "$STATE_DIR"
    rm -f "$PID_FILE"
    # dockerd writes its own pid file (and removes it when it exits). Its own session: Ctrl-C in the shell that ran
    # make does not reach it; `stop` ends it.
    as_root setsid /usr/sbin/dockerd --pidfile "$(realpath "$PID_FILE")" >"$LOG" 2>&1 < /dev/null &
    local launched=$!
    for _ in $(seq 60); do
        if "$DOCKER" info >/dev/null 2>&1; then
            echo "docker-engine: started dockerd $(cat "$PID_FILE") ($("$DOCKER" version -f '{{.Server.Version}}'));" \
                "log $LOG; make docker-engine-stop stops it"
            return 0
        fi
        if ! kill -0 "$launched" 2>/dev/null && ! ours >/dev/null; then break; fi
        sleep 1
    done
    echo "docker-engine: dockerd did not answer; the end of $LOG:" >&2
    tail -20 "$LOG" >&2
    rm -f "$PID_FILE"
    return 1
}

stop() {
    local pid
    if ! pid=$(ours); then
        echo "docker-engine: no dockerd started by make docker-engine is running; nothing to stop"
        rm -f "$PID_FILE"
        return 0
    fi
    # dockerd stops its containers (each with its own stop timeout) before it exits.
    as_root kill -TERM "$pid"
    for _ in $(seq 120); do
        [ -d "/proc/$pid" ] || { rm -f "$PID_FILE"; echo "docker-engine: stopped dockerd $pid"; return 0; }
        sleep 1
    done
    echo "docker-engine: dockerd $pid still runs 120 s after SIGTERM; see $LOG" >&2
    return 1
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
