# Shared by scripts/test, scripts/fuzz and scripts/chaos: bring up what Keel runs on, and
# remember what was started so that the caller's exit trap stops it (`stop_started`).
# Expects DATABASE_URL to be set.

started=()

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

pg_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

psql_server() { psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -Atq "$@"; }

# PostgreSQL: use the one running, else start the machine's cluster, else install it.
ensure_postgres() {
    if pg_isready -d "$DATABASE_URL" -q 2>/dev/null; then return; fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        say "installing PostgreSQL"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main start
    started+=(postgres)
    for _ in $(seq 1 30); do
        pg_isready -d "$DATABASE_URL" -q && return
        sleep 1
    done
    echo "PostgreSQL did not become ready at $DATABASE_URL" >&2
    exit 1
}

# Redis and MariaDB, the broker's shared servers in its tests: the ones running, else the
# machine's started (and stopped again at the end), else installed from Debian's packages.
ensure_redis() {
    if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
    if ! command -v redis-server >/dev/null 2>&1; then
        say "installing Redis"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    fi
    say "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    started+=(redis)
    for _ in $(seq 1 50); do
        redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return
        sleep 0.1
    done
    echo "Redis did not start on 127.0.0.1:6379" >&2
    exit 1
}

ensure_mariadb() {
    if mariadb -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null 2>&1; then return; fi
    if ! command -v mariadbd >/dev/null 2>&1; then
        say "installing MariaDB"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
    fi
    say "starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    started+=(mariadb)
    for _ in $(seq 1 100); do
        mariadb -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null 2>&1 && return
        sleep 0.2
    done
    echo "MariaDB did not accept root on 127.0.0.1:3306" >&2
    exit 1
}

# NATS with JetStream (the broker's stream target): the one running, else the machine's started.
ensure_nats() {
    if (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then return; fi
    if ! command -v nats-server >/dev/null 2>&1; then
        say "installing NATS"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null
    fi
    say "starting NATS with JetStream"
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    started+=(nats)
    for _ in $(seq 1 50); do
        (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && return
        sleep 0.1
    done
    echo "NATS did not start on 127.0.0.1:4222" >&2
    exit 1
}

# RabbitMQ with its management API on 127.0.0.1:15672 (the broker's vhost target): the
# running one, else the machine's started; the plugin is enabled when it is not (it stays so).
ensure_rabbitmq() {
    if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
        if ! command -v rabbitmq-server >/dev/null 2>&1; then
            say "installing RabbitMQ"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
        fi
        say "starting RabbitMQ"
        rabbitmq-server -detached
        started+=(rabbitmq)
        for _ in $(seq 1 150); do
            (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break
            sleep 0.2
        done
    fi
    if ! curl -fsS -o /dev/null -u guest:guest http://127.0.0.1:15672/api/overview 2>/dev/null; then
        say "enabling RabbitMQ's management plugin"
        rabbitmq-plugins enable rabbitmq_management >/dev/null
        for _ in $(seq 1 150); do
            curl -fsS -o /dev/null -u guest:guest http://127.0.0.1:15672/api/overview 2>/dev/null && return
            sleep 0.2
        done
        echo "RabbitMQ's management API did not answer on 127.0.0.1:15672" >&2
        exit 1
    fi
}

# A real Kafka-protocol broker: tansu on sqlite storage (its memory engine cannot serve a
# consumer resuming inside a produced batch). Built once (~11 minutes on 2 cores), then reused.
TANSU_VERSION=0.6.0
TANSU_ROOT="${TANSU_ROOT:-$HOME/.local/tansu}"
ensure_tansu() {
    export TANSU_BIN="$TANSU_ROOT/bin/tansu"
    if [[ ! -x "$TANSU_BIN" ]] || ! grep -qs "^$TANSU_VERSION\$" "$TANSU_ROOT/.keel-version"; then
        say "installing tansu $TANSU_VERSION with sqlite storage (about 11 minutes, once)"
        cargo install tansu --version "$TANSU_VERSION" --locked --features libsql --root "$TANSU_ROOT"
        echo "$TANSU_VERSION" > "$TANSU_ROOT/.keel-version"
    fi
}

# tansu 0.6.0's sqlite schema has no index on its header table, and a fetch looks up each
# record's headers there: every record read scans every header ever stored, so consumers crawl
# once a topic holds a few thousand messages. The broker creates its tables on start; the index
# is added beside them (tansu never drops what it did not create).
tansu_index_headers() {
    python3 - "$1" <<'PY'
import sqlite3, sys, time
for _ in range(100):
    try:
        db = sqlite3.connect(sys.argv[1], timeout=10)
        db.execute("CREATE INDEX IF NOT EXISTS keel_header_record ON header (topition, offset_id)")
        db.commit()
        break
    except sqlite3.OperationalError:
        time.sleep(0.1)
else:
    sys.exit("could not index tansu's header table")
PY
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# `start_kafka restartable` runs the broker under a loop that starts it again whenever it dies,
# writing the running broker's pid to $tansu_dir/tansu.pid (what the chaos run kills).
start_kafka() {
    if [[ -n "${KAFKA_BROKERS:-}" ]]; then return; fi
    ensure_tansu
    tansu_dir=$(mktemp -d)
    local port
    port=$(free_port)
    say "starting tansu on 127.0.0.1:$port"
    local broker=("$TANSU_BIN" broker --listener-url "tcp://127.0.0.1:$port"
        --advertised-listener-url "tcp://127.0.0.1:$port" --storage-engine sqlite://tansu.db)
    # The sqlite path is relative to the working directory: a fresh directory per run.
    if [[ "${1:-}" == restartable ]]; then
        (cd "$tansu_dir" && while [[ ! -e stop ]]; do
            "${broker[@]}" >> tansu.log 2>&1 &
            echo $! > tansu.pid
            wait $! || true
            sleep 0.5
        done) 2>/dev/null &
    else
        (cd "$tansu_dir" && exec "${broker[@]}" > tansu.log 2>&1) &
    fi
    tansu_pid=$!
    started+=(tansu)
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            tansu_index_headers "$tansu_dir/tansu.db"
            export KAFKA_BROKERS="127.0.0.1:$port"
            return
        fi
        sleep 0.1
    done
    echo "tansu did not start; its log:" >&2
    cat "$tansu_dir/tansu.log" >&2
    exit 1
}

# Koku's test-data generator and moto's S3 server, in a cached virtualenv (KEEL_INGEST_VENV).
KOKU_NISE_VERSION=5.4.4
MOTO_VERSION=5.2.5
ensure_ingest_tools() {
    local venv="${KEEL_CACHE:-$HOME/.cache/keel}/ingest-venv"
    if ! "$venv/bin/nise" --version 2>/dev/null | grep -qx "nise $KOKU_NISE_VERSION" ||
        ! "$venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
        say "installing koku-nise $KOKU_NISE_VERSION and moto $MOTO_VERSION"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "koku-nise==$KOKU_NISE_VERSION" "moto[server]==$MOTO_VERSION"
    fi
    export KEEL_INGEST_VENV="$venv"
}

# moto's S3 (KEEL_MOTO_URL), unless one is named.
start_moto() {
    if [[ -n "${KEEL_MOTO_URL:-}" ]]; then return; fi
    ensure_ingest_tools
    local port
    port=$(free_port)
    say "starting moto's S3 on 127.0.0.1:$port"
    moto_log=$(mktemp)
    "$KEEL_INGEST_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" > "$moto_log" 2>&1 &
    moto_pid=$!
    started+=(moto)
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            export KEEL_MOTO_URL="http://127.0.0.1:$port"
            return
        fi
        sleep 0.1
    done
    echo "moto did not start; its log:" >&2
    cat "$moto_log" >&2
    exit 1
}

# Stops what this run started, newest first.
stop_started() {
    local i
    for ((i = ${#started[@]} - 1; i >= 0; i--)); do
        case "${started[$i]}" in
            postgres) say "stopping the PostgreSQL this run started"; pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main stop || true ;;
            tansu)
                # The restart loop's broker first (the loop sees `stop` and ends), then the loop.
                touch "$tansu_dir/stop"
                if [[ -s "$tansu_dir/tansu.pid" ]]; then kill "$(cat "$tansu_dir/tansu.pid")" 2>/dev/null || true; fi
                kill "$tansu_pid" 2>/dev/null || true; wait "$tansu_pid" 2>/dev/null || true; rm -rf "$tansu_dir" ;;
            redis) redis-cli -h 127.0.0.1 -p 6379 shutdown nosave >/dev/null 2>&1 || true ;;
            rabbitmq) rabbitmqctl stop >/dev/null 2>&1 || true ;;
            nats) start-stop-daemon --stop --oknodo --exec /usr/sbin/nats-server --retry 10 >/dev/null || true ;;
            mariadb) start-stop-daemon --stop --oknodo --exec /usr/sbin/mariadbd --retry 30 >/dev/null || true ;;
            moto) kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -f "$moto_log" ;;
            tls_postgres) runuser -u postgres -- "$pg_bin/pg_ctl" -D "$tls_dir/data" -m fast stop >/dev/null 2>&1 || true; rm -rf "$tls_dir" ;;
        esac
    done
}
