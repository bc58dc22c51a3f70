# shellcheck shell=bash
# Start a throw-away PostgreSQL server for the test suite and export
# CANO_DSL_TEST_POSTGRES_DSN. Meant to be *sourced* by .ci/run:
#
#     source .ci/postgres.sh
#
# - installs the Debian `postgresql` package only when no server binaries are found
#   (and only as root with apt-get available);
# - runs initdb into $CANO_DSL_PG_DIR (default /tmp/cano_dsl_pg) as the `postgres` user
#   when run as root (the server refuses to run as root);
# - listens on 127.0.0.1 on a free port, with trust auth, and creates database
#   `cano_dsl_test`;
# - idempotent: sourcing it again reuses the running server;
# - never fails the caller: on any problem it prints a warning, leaves the variable
#   unset, and the PostgreSQL tests skip.
#
# Stop the server with:  pg_ctl -D "$CANO_DSL_PG_DIR/data" stop   (as the same user)

_cano_pg_warn() {
    echo "warning: .ci/postgres.sh: $*; PostgreSQL tests will be skipped" >&2
}

_cano_pg_find_bindir() {
    local d candidates=()
    if command -v pg_ctl >/dev/null 2>&1; then
        candidates+=("$(dirname "$(readlink -f "$(command -v pg_ctl)")")")
    fi
    # Debian: /usr/lib/postgresql/<major>/bin, newest first.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -rn); do
        candidates+=("$d")
    done
    for d in "${candidates[@]}"; do
        if [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

# Run a command as the server's user (postgres when we are root, ourselves otherwise).
_cano_pg_as() {
    if [ "$(id -u)" = 0 ]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            su -s /bin/sh postgres -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

_cano_pg_setup() {
    local bindir base data port dsn_base db=cano_dsl_test
    bindir=$(_cano_pg_find_bindir)
    if [ -z "$bindir" ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo ".ci/postgres.sh: installing postgresql with apt-get" >&2
            DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null ||
                { _cano_pg_warn "apt-get install postgresql failed"; return 0; }
            bindir=$(_cano_pg_find_bindir)
        fi
        if [ -z "$bindir" ]; then
            _cano_pg_warn "no PostgreSQL server binaries (pg_ctl, initdb, postgres) found"
            return 0
        fi
    fi

    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres 2>/dev/null ||
            { _cano_pg_warn "cannot create the postgres user"; return 0; }
    fi

    base=${CANO_DSL_PG_DIR:-/tmp/cano_dsl_pg}
    data=$base/data
    mkdir -p "$base" || { _cano_pg_warn "cannot create $base"; return 0; }
    if [ "$(id -u)" = 0 ]; then
        chown postgres "$base" || { _cano_pg_warn "cannot chown $base to postgres"; return 0; }
    fi
    chmod 700 "$base"

    if [ -f "$base/port" ] && _cano_pg_as "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1 &&
        _cano_pg_as "$bindir/psql" -h 127.0.0.1 -p "$(cat "$base/port")" -U postgres \
            -d postgres -tAqc "SELECT 1" >/dev/null 2>&1; then
        port=$(cat "$base/port")
    else
        # Not running, or only a stale pid file / an unreaped process of a server that
        # was killed (a session's processes are ended before CI runs): start afresh.
        if [ -f "$data/postmaster.pid" ]; then
            _cano_pg_as "$bindir/pg_ctl" -D "$data" stop -m immediate >/dev/null 2>&1 || true
            rm -f "$data/postmaster.pid"
        fi
        if [ ! -f "$data/PG_VERSION" ]; then
            rm -rf "$data"
            _cano_pg_as "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 \
                --locale=C.UTF-8 >"$base/initdb.log" 2>&1 ||
                _cano_pg_as "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 \
                    --locale=C >"$base/initdb.log" 2>&1 ||
                { _cano_pg_warn "initdb failed (see $base/initdb.log)"; return 0; }
        fi
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null) ||
            port=55432
        _cano_pg_as "$bindir/pg_ctl" -D "$data" -l "$base/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $base -c max_connections=200" \
            start >/dev/null 2>&1 ||
            { _cano_pg_warn "the server did not start (see $base/server.log)"; return 0; }
        echo "$port" >"$base/port"
    fi

    # a server just (re)started after an unclean stop may still be recovering: retry
    local try ok=""
    for try in 1 2 3 4 5 6 7 8 9 10; do
        if _cano_pg_as "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAq \
            -c "SELECT 1 FROM pg_database WHERE datname = '$db'" 2>/dev/null | grep -q 1; then
            ok=1
            break
        fi
        if _cano_pg_as "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db" 2>/dev/null; then
            ok=1
            break
        fi
        sleep 1
    done
    [ -n "$ok" ] || { _cano_pg_warn "createdb $db failed"; return 0; }

    export CANO_DSL_TEST_POSTGRES_DSN="postgresql://postgres@127.0.0.1:$port/$db"
    export CANO_DSL_PG_DIR="$base"
    echo ".ci/postgres.sh: PostgreSQL ready: CANO_DSL_TEST_POSTGRES_DSN=$CANO_DSL_TEST_POSTGRES_DSN" >&2
}

_cano_pg_setup || _cano_pg_warn "unexpected failure"
unset -f _cano_pg_setup _cano_pg_find_bindir _cano_pg_as _cano_pg_warn
