#!/usr/bin/env bash
# Installs a real (but tiny) OpenStack control plane on loopback:
#   Keystone, Glance (file store), Neutron (ML2 + mos_loopback driver, no agents),
#   Placement, Nova (api/conductor/scheduler/compute with the fake virt driver),
#   and a second independent Nova+Placement for RegionTwo.
# Idempotent: re-running reinstalls nothing that is already there, rewrites
# the config files and only initialises databases that do not exist yet.
#
#   MOS_VENV   (default /opt/mini-openstack/venv)  python virtualenv
#   MOS_STATE  (default /var/tmp/mini-openstack)   configs, databases, logs
#   MOS_RESET=1  wipe $MOS_STATE first (fresh databases)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
T0=$(date +%s)
log() { echo "[setup +$(( $(date +%s) - T0 ))s] $*"; }

if [ -f "$MOS_STATE/run/pids" ] && [ -s "$MOS_STATE/run/pids" ]; then
    echo "services seem to be running (see $MOS_STATE/run/pids); run stop.sh first" >&2
    exit 1
fi
if [ "${MOS_RESET:-0}" = 1 ]; then
    log "MOS_RESET=1: removing $MOS_STATE"
    rm -rf "$MOS_STATE"
fi

# ---------------------------------------------------------------- Debian
need_pkgs=""
pkgs="rabbitmq-server erlang-base jq sqlite3 curl procps iproute2 python3 openssh-client"
[ "$MOS_DB" = sqlite ] || pkgs="$pkgs mariadb-server mariadb-client"
for p in $pkgs; do
    dpkg -s "$p" >/dev/null 2>&1 || need_pkgs="$need_pkgs $p"
done
if [ -n "$need_pkgs" ]; then
    log "apt-get install$need_pkgs"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need_pkgs
fi
# Debian's package would normally be started by systemd; we run our own node.

# ---------------------------------------------------------------- venv
PY=${MOS_PYTHON:-}
if [ -z "$PY" ]; then
    for c in python3.11 python3.12 python3.13 python3; do
        if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3,11) else 1)'; then
            PY=$(command -v "$c"); break
        fi
    done
fi
[ -n "$PY" ] || { echo "need python >= 3.11 (nova 34 / keystone 30 require it)" >&2; exit 1; }
if [ ! -x "$MOS_VENV/bin/python" ]; then
    log "creating venv $MOS_VENV with $PY"
    mkdir -p "$(dirname "$MOS_VENV")"
    "$PY" -m venv "$MOS_VENV"
    "$MOS_VENV/bin/pip" install -q --upgrade pip setuptools wheel
fi
if ! "$MOS_VENV/bin/python" - <<'EOF' 2>/dev/null
import importlib.metadata as m
want = {"keystone": "30.0.0", "nova": "34.0.0", "openstack-placement": "16.0.0",
        "glance": "33.0.0", "neutron": "29.0.0", "python-openstackclient": "10.5.0"}
for k, v in want.items():
    assert m.version(k) == v, k
m.version("gunicorn")
m.version("PyMySQL")
EOF
then
    log "pip install $MOS_PIP_PACKAGES"
    "$MOS_VENV/bin/pip" install -q $MOS_PIP_PACKAGES
fi
# Our one plugin: an ML2 mechanism driver that binds every port (see mos_ml2/).
if ! "$MOS_VENV/bin/python" -c 'import importlib.metadata as m; m.version("mos-ml2")' 2>/dev/null \
   || ! cmp -s "$HERE/mos_ml2/mos_ml2/driver.py" "$("$MOS_VENV/bin/python" -c 'import mos_ml2.driver as d; print(d.__file__)' 2>/dev/null)"; then
    log "pip install mos_ml2 (loopback ML2 mechanism driver)"
    rm -rf "$MOS_STATE/build-mos_ml2"; mkdir -p "$MOS_STATE"; cp -r "$HERE/mos_ml2" "$MOS_STATE/build-mos_ml2"
    "$MOS_VENV/bin/pip" install -q --no-build-isolation --no-deps "$MOS_STATE/build-mos_ml2"
    rm -rf "$MOS_STATE/build-mos_ml2"
fi
log "python packages ok: $("$MOS_VENV/bin/python" -c 'import importlib.metadata as m; print(" ".join(f"{k}={m.version(k)}" for k in ["keystone","nova","openstack-placement","glance","neutron","python-openstackclient","openstacksdk","oslo.messaging","SQLAlchemy","gunicorn"]))')"

# ---------------------------------------------------------------- configs
S=$MOS_STATE
mkdir -p "$S"
if [ -f "$S/db_backend" ] && [ "$(cat "$S/db_backend")" != "$MOS_DB" ]; then
    echo "$S was set up with DB backend $(cat "$S/db_backend"); use MOS_RESET=1 to switch to $MOS_DB" >&2
    exit 1
fi
echo "$MOS_DB" > "$S/db_backend"
mkdir -p "$S"/{etc,data,log,run,lock,mysql,glance/images,glance/staging,glance/tasks,rabbitmq/home,rabbitmq/mnesia,rabbitmq/log}
chmod 700 "$S/rabbitmq/home"
KS="http://$MOS_HOST:$MOS_KEYSTONE_PORT"

authtoken() {  # $1 = service user name, $2 = region
cat <<EOF
[keystone_authtoken]
www_authenticate_uri = $KS
auth_url = $KS
auth_type = password
username = $1
password = $MOS_PASSWORD
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = $2
service_token_roles_required = true
EOF
}
svc_auth() {  # $1 = section, $2 = user, $3 = region
cat <<EOF
[$1]
auth_url = $KS
auth_type = password
username = $2
password = $MOS_PASSWORD
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = $3
EOF
}

# --- keystone
mkdir -p "$S/etc/keystone/fernet-keys" "$S/etc/keystone/credential-keys"
cat > "$S/etc/keystone/keystone.conf" <<EOF
[DEFAULT]
log_file = $S/log/keystone.log
[database]
connection = $(mos_db_url keystone)
[token]
provider = fernet
expiration = $MOS_TOKEN_EXPIRATION
[fernet_tokens]
key_repository = $S/etc/keystone/fernet-keys/
[fernet_receipts]
key_repository = $S/etc/keystone/fernet-keys/
[credential]
key_repository = $S/etc/keystone/credential-keys/
EOF

# --- glance (file store)
mkdir -p "$S/etc/glance"
cp "$MOS_VENV/etc/glance/glance-api-paste.ini" "$S/etc/glance/glance-api-paste.ini"
cat > "$S/etc/glance/glance-api.conf" <<EOF
[DEFAULT]
log_file = $S/log/glance-api.log
enabled_backends = fs:file
bind_host = $MOS_HOST
bind_port = $MOS_GLANCE_PORT
workers = 1
public_endpoint = http://$MOS_HOST:$MOS_GLANCE_PORT
[database]
connection = $(mos_db_url glance)
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = $S/glance/images/
[os_glance_staging_store]
filesystem_store_datadir = $S/glance/staging/
[os_glance_tasks_store]
filesystem_store_datadir = $S/glance/tasks/
[paste_deploy]
flavor = keystone
config_file = $S/etc/glance/glance-api-paste.ini
[oslo_concurrency]
lock_path = $S/lock/glance
$(authtoken glance RegionOne)
EOF

# --- neutron (ML2 + "test" mechanism driver, no agents)
mkdir -p "$S/etc/neutron/plugins/ml2"
cp "$MOS_VENV/etc/neutron/api-paste.ini" "$S/etc/neutron/api-paste.ini"
cat > "$S/etc/neutron/neutron.conf" <<EOF
[DEFAULT]
log_file = $S/log/neutron-api.log
bind_host = $MOS_HOST
bind_port = $MOS_NEUTRON_PORT
core_plugin = ml2
service_plugins =
auth_strategy = keystone
api_paste_config = $S/etc/neutron/api-paste.ini
transport_url = rabbit://guest:guest@$MOS_HOST:$MOS_RABBIT_PORT/neutron
dhcp_agent_notification = false
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
state_path = $S/data/neutron
[database]
connection = $(mos_db_url neutron)
[oslo_concurrency]
lock_path = $S/lock/neutron
[agent]
root_helper =
$(authtoken neutron RegionOne)
$(svc_auth nova nova RegionOne)
EOF
cat > "$S/etc/neutron/plugins/ml2/ml2_conf.ini" <<EOF
[ml2]
type_drivers = flat,local
tenant_network_types = local
mechanism_drivers = mos_loopback
extension_drivers = port_security
[ml2_type_flat]
flat_networks = physnet1
[securitygroup]
enable_security_group = true
EOF

# --- placement + nova, per region
for r in $(mos_regions); do
    RN=$(mos_region_name "$r")
    PP=$(mos_placement_port "$r")
    NP=$(mos_nova_port "$r")
    VHOST=nova$r
    mkdir -p "$S/etc/placement$r" "$S/etc/nova$r" "$S/data/nova$r"
    cat > "$S/etc/placement$r/placement.conf" <<EOF
[DEFAULT]
log_file = $S/log/placement$r-api.log
[placement_database]
connection = $(mos_db_url placement$r)
[api]
auth_strategy = keystone
$(authtoken placement "$RN")
EOF
    cp "$MOS_VENV/etc/nova/api-paste.ini" "$S/etc/nova$r/api-paste.ini"
    cat > "$S/etc/nova$r/nova.conf" <<EOF
[DEFAULT]
host = compute-r$r
# FakeDriverWithoutFakeNodes = nova's FakeDriver (same fake resources, no
# hypervisor) but with a stable node identity (state_path/compute_id), so
# nova-compute can be restarted; plain FakeDriver picks a random node UUID
# per process and refuses to start a second time.
compute_driver = fake.FakeDriverWithoutFakeNodes
my_ip = $MOS_HOST
state_path = $S/data/nova$r
instances_path = $S/data/nova$r/instances
transport_url = rabbit://guest:guest@$MOS_HOST:$MOS_RABBIT_PORT/$VHOST
osapi_compute_listen = $MOS_HOST
osapi_compute_listen_port = $NP
osapi_compute_workers = 1
metadata_workers = 1
use_rootwrap_daemon = false
heal_instance_info_cache_interval = -1
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $S/etc/nova$r/api-paste.ini
[api_database]
connection = $(mos_db_url nova${r}_api)
[database]
connection = $(mos_db_url nova${r}_cell1)
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 5
[oslo_concurrency]
lock_path = $S/lock/nova$r
[oslo_messaging_notifications]
driver = noop
[vnc]
enabled = false
[cinder]
os_region_name = $RN
[glance]
region_name = $RN
[os_vif_ovs]
$(svc_auth service_user nova "$RN")
# Neutron's default policy only lets a port bound to an instance
# (device_owner compute:*) be deleted by a request that carries a service
# token, so nova must send one (this is also upstream's required setting).
send_service_user_token = true
$(authtoken nova "$RN")
$(svc_auth placement placement "$RN")
$(svc_auth neutron neutron "$RN")
EOF
    # nova-compute must not see DB connection strings (as in a real
    # deployment): with [api_database]/connection set, its RPC API tries to
    # read service versions from the DB directly and logs "No DB access
    # allowed in nova-compute".
    grep -v '^connection = ' "$S/etc/nova$r/nova.conf" > "$S/etc/nova$r/nova-cpu.conf"
done

# ---------------------------------------------------------------- databases
B=$MOS_VENV/bin
DBNAMES="keystone glance neutron"
for r in $(mos_regions); do DBNAMES="$DBNAMES placement$r nova${r}_api nova${r}_cell0 nova${r}_cell1"; done
if [ "$MOS_DB" != sqlite ]; then
    mkdir -p "$S/mysql"
    if [ ! -d "$S/mysql/data/mysql" ]; then
        log "mariadb-install-db -> $S/mysql/data"
        mariadb-install-db --no-defaults --user=root --datadir="$S/mysql/data" \
            --auth-root-authentication-method=socket --skip-test-db > "$S/log/mariadb-install.log" 2>&1
    fi
    # a temporary server for schema creation; start.sh runs the real one
    mos_mysqld_cmd
    setsid "${MYSQLD[@]}" >> "$S/log/mariadb.out" 2>&1 < /dev/null &
    TMP_MYSQLD=$!
    trap 'kill "$TMP_MYSQLD" 2>/dev/null; wait "$TMP_MYSQLD" 2>/dev/null' EXIT
    mos_mysql_wait || { echo "mariadb did not start, see $S/log/mariadb.err" >&2; exit 1; }
    {
        echo "CREATE USER IF NOT EXISTS 'mos'@'localhost' IDENTIFIED BY '$MOS_PASSWORD';"
        for d in $DBNAMES; do
            echo "CREATE DATABASE IF NOT EXISTS $d CHARACTER SET utf8mb4;"
            echo "GRANT ALL PRIVILEGES ON $d.* TO 'mos'@'localhost';"
        done
    } | mariadb --no-defaults --socket="$MOS_MYSQL_SOCK" -uroot
    log "mariadb up (pid $TMP_MYSQLD), databases: $DBNAMES"
fi
if [ ! -f "$S/data/.keystone-done" ]; then
    log "keystone db_sync + fernet + bootstrap"
    $B/keystone-manage --config-file "$S/etc/keystone/keystone.conf" db_sync
    $B/keystone-manage --config-file "$S/etc/keystone/keystone.conf" fernet_setup --keystone-user root --keystone-group root
    $B/keystone-manage --config-file "$S/etc/keystone/keystone.conf" credential_setup --keystone-user root --keystone-group root
    $B/keystone-manage --config-file "$S/etc/keystone/keystone.conf" bootstrap \
        --bootstrap-password "$MOS_PASSWORD" --bootstrap-username "$MOS_ADMIN_USER" \
        --bootstrap-project-name "$MOS_ADMIN_PROJECT" --bootstrap-role-name admin \
        --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
        --bootstrap-admin-url "$KS/v3" --bootstrap-internal-url "$KS/v3" \
        --bootstrap-public-url "$KS/v3"
    touch "$S/data/.keystone-done"
fi
if [ ! -f "$S/data/.glance-done" ]; then
    log "glance db_sync"
    $B/glance-manage --config-file "$S/etc/glance/glance-api.conf" db_sync
    touch "$S/data/.glance-done"
fi
if [ ! -f "$S/data/.neutron-done" ]; then
    if [ "$MOS_DB" = sqlite ]; then
        # Neutron's alembic migrations use ALTER CONSTRAINT, which SQLite
        # cannot do, so build the schema from the HEAD models (what neutron's
        # own sqlite-based unit tests do) and stamp alembic at heads.
        log "neutron db: metadata.create_all from HEAD models + alembic stamp heads"
        rm -f "$S/data/neutron.sqlite"
        $B/python - "$S/data/neutron.sqlite" <<'PYEOF'
import sys
import sqlalchemy as sa
from neutron.db.migration.models import head
engine = sa.create_engine("sqlite:///" + sys.argv[1])
head.get_metadata().create_all(engine)
print("neutron tables:", len(head.get_metadata().tables))
PYEOF
        NDB=stamp
    else
        log "neutron-db-manage upgrade heads"
        NDB=upgrade
    fi
    $B/neutron-db-manage --config-file "$S/etc/neutron/neutron.conf" \
        --config-file "$S/etc/neutron/plugins/ml2/ml2_conf.ini" $NDB heads > "$S/log/neutron-db-manage.log" 2>&1 \
        || { tail -20 "$S/log/neutron-db-manage.log"; exit 1; }
    touch "$S/data/.neutron-done"
fi
for r in $(mos_regions); do
    if [ ! -f "$S/data/.placement$r-done" ]; then
        log "placement$r db sync"
        OS_PLACEMENT_CONFIG_DIR="$S/etc/placement$r" $B/placement-manage --config-dir "$S/etc/placement$r" db sync
        touch "$S/data/.placement$r-done"
    fi
    if [ ! -f "$S/data/.nova$r-done" ]; then
        log "nova$r api_db sync / cell0 / cell1 / db sync"
        NC="--config-file $S/etc/nova$r/nova.conf"
        $B/nova-manage $NC api_db sync
        $B/nova-manage $NC cell_v2 map_cell0 --database_connection "$(mos_db_url nova${r}_cell0)"
        $B/nova-manage $NC cell_v2 list_cells | grep -q ' cell1 ' || \
            $B/nova-manage $NC cell_v2 create_cell --name cell1 --verbose
        $B/nova-manage $NC db sync
        $B/nova-manage $NC cell_v2 list_cells
        touch "$S/data/.nova$r-done"
    fi
done

if [ -n "${TMP_MYSQLD:-}" ]; then
    kill "$TMP_MYSQLD"; wait "$TMP_MYSQLD" 2>/dev/null || true; trap - EXIT
fi
log "done in $(( $(date +%s) - T0 ))s; state dir $S; DB backend $MOS_DB; now run start.sh"
