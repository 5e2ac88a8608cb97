# Common settings for the mini-openstack harness. Sourced by setup.sh,
# start.sh, stop.sh and smoke.sh. Everything can be overridden from the
# environment.

MOS_VENV=${MOS_VENV:-/opt/oms-conformance/venv}
MOS_STATE=${MOS_STATE:-/var/tmp/oms-conformance}
# Keystone token lifetime in seconds: short, so the daemon must renew
# during a run. Not under ~200: keystoneauth (in every OpenStack service)
# renews any token with less than 120 s left, so shorter tokens make the
# services sign in again on every call and keystone saturates a core.
MOS_TOKEN_EXPIRATION=${MOS_TOKEN_EXPIRATION:-240}
MOS_HOST=127.0.0.1            # everything binds to loopback only

# Ports (loopback).
MOS_KEYSTONE_PORT=${MOS_KEYSTONE_PORT:-5000}
MOS_GLANCE_PORT=${MOS_GLANCE_PORT:-9292}
MOS_NEUTRON_PORT=${MOS_NEUTRON_PORT:-9696}
MOS_NOVA1_PORT=${MOS_NOVA1_PORT:-8774}          # RegionOne compute API
MOS_PLACEMENT1_PORT=${MOS_PLACEMENT1_PORT:-8778}
MOS_NOVA2_PORT=${MOS_NOVA2_PORT:-18774}         # RegionTwo compute API
MOS_PLACEMENT2_PORT=${MOS_PLACEMENT2_PORT:-18778}
MOS_RABBIT_PORT=${MOS_RABBIT_PORT:-5672}
MOS_RABBIT_DIST_PORT=${MOS_RABBIT_DIST_PORT:-25672}
MOS_EPMD_PORT=${MOS_EPMD_PORT:-4369}

# Database backend: "mariadb" (default; Debian's mariadb-server, our own
# instance on a unix socket under $MOS_STATE, no TCP) or "sqlite" (works for a
# single boot, but nova/placement hit "database is locked" under concurrent
# writes, e.g. two deletes at once; see README).
MOS_DB=${MOS_DB:-$(cat "$MOS_STATE/db_backend" 2>/dev/null || echo mariadb)}
MOS_MYSQL_SOCK=$MOS_STATE/mysql/mysqld.sock

# Set MOS_REGION_TWO=0 to run a single region only.
MOS_REGION_TWO=${MOS_REGION_TWO:-1}

# Credentials. Every password is literally "secret" (so transcripts are exact).
MOS_PASSWORD=secret
MOS_ADMIN_USER=admin
MOS_ADMIN_PROJECT=admin
MOS_DEMO_USER=demo
MOS_DEMO_PROJECT=demo
MOS_FLAVOR=m1.tiny
MOS_IMAGE=cirros-fake
MOS_NETWORK=private

# Pinned versions.
MOS_PIP_PACKAGES="keystone==30.0.0 nova==34.0.0 openstack-placement==16.0.0 glance==33.0.0 neutron==29.0.0 python-openstackclient==10.5.0 gunicorn PyMySQL"

MOS_AUTH_URL="http://${MOS_HOST}:${MOS_KEYSTONE_PORT}/v3"

mos_db_url() {  # mos_db_url DBNAME
    if [ "$MOS_DB" = sqlite ]; then
        echo "sqlite:///$MOS_STATE/data/$1.sqlite"
    else
        echo "mysql+pymysql://mos:$MOS_PASSWORD@localhost/$1?unix_socket=$MOS_MYSQL_SOCK&charset=utf8mb4"
    fi
}
mos_mysqld_cmd() {  # the mariadbd command line (array MYSQLD)
    MYSQLD=(/usr/sbin/mariadbd --no-defaults --user=root
        --datadir="$MOS_STATE/mysql/data" --socket="$MOS_MYSQL_SOCK"
        --pid-file="$MOS_STATE/mysql/mysqld.pid" --skip-networking
        --log-error="$MOS_STATE/log/mariadb.err" --skip-log-bin
        --innodb-buffer-pool-size=128M --innodb-log-file-size=64M
        --innodb-flush-log-at-trx-commit=2 --max-connections=1000
        --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci
        --skip-name-resolve)
}
mos_mysql_wait() {  # wait until the server answers on the socket
    local i
    for i in $(seq 1 120); do
        mariadb-admin --no-defaults --socket="$MOS_MYSQL_SOCK" -uroot ping >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}
mos_regions() {
    if [ "${MOS_REGION_TWO}" = "1" ]; then echo "1 2"; else echo "1"; fi
}
mos_region_name() { if [ "$1" = 1 ]; then echo RegionOne; else echo RegionTwo; fi; }
mos_nova_port() { if [ "$1" = 1 ]; then echo "$MOS_NOVA1_PORT"; else echo "$MOS_NOVA2_PORT"; fi; }
mos_placement_port() { if [ "$1" = 1 ]; then echo "$MOS_PLACEMENT1_PORT"; else echo "$MOS_PLACEMENT2_PORT"; fi; }

export OS_AUTH_URL=$MOS_AUTH_URL OS_IDENTITY_API_VERSION=3 \
    OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default
mos_admin_env() {
    export OS_USERNAME=$MOS_ADMIN_USER OS_PASSWORD=$MOS_PASSWORD \
        OS_PROJECT_NAME=$MOS_ADMIN_PROJECT OS_REGION_NAME=${1:-RegionOne}
}
mos_demo_env() {
    export OS_USERNAME=$MOS_DEMO_USER OS_PASSWORD=$MOS_PASSWORD \
        OS_PROJECT_NAME=$MOS_DEMO_PROJECT OS_REGION_NAME=${1:-RegionOne}
}
