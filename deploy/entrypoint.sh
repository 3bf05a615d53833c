#!/bin/sh
# Entry point of the Orrery container image: makes the node on first start, then runs the
# command (by default `orrery run`).
#
#   ORRERY_DATA_DIR      the node's data directory (default /var/lib/orrery/node, on the volume)
#   ORRERY_NODE_NAME     the name given to a new node (default: the host name)
#   ORRERY_CONFIG        a configuration file (a mounted ConfigMap or file) copied over the data
#                        directory's orrery.toml on every start, so the mounted file is the truth
#
# The node's key is made here, once, and lives only on the volume: back the volume up.
set -eu

: "${ORRERY_DATA_DIR:=/var/lib/orrery/node}"
export ORRERY_DATA_DIR

if [ ! -e "$ORRERY_DATA_DIR/orrery.toml" ]; then
    orrery init --public --name "${ORRERY_NODE_NAME:-$(hostname)}" >&2
    # In a container the HTTP face and the metrics listener must be reachable from outside it
    # (the container's network is the boundary): listen on every interface.
    sed -i 's/^listen = "127\.0\.0\.1:\(7480\|9480\)"$/listen = "0.0.0.0:\1"/' \
        "$ORRERY_DATA_DIR/orrery.toml"
fi
if [ -n "${ORRERY_CONFIG:-}" ]; then
    cp "$ORRERY_CONFIG" "$ORRERY_DATA_DIR/orrery.toml"
fi
# The doctor's report goes to the log; the node itself refuses a broken configuration.
orrery doctor --timeout 2 >&2 || echo "orrery doctor found problems (above); starting anyway" >&2
exec "$@"
