#!/bin/sh
# Forms the compose file's three-node federation, as `scripts/demo` does on one machine:
#
#   federate.sh founder NAME     found the federation (once), write a one-time invitation for
#                                each joiner into /invites, then run the node
#   federate.sh joiner NAME      wait for NAME's invitation, join with it (once), run the node
#
# The entry point (deploy/entrypoint.sh) has already made the node and installed its
# configuration. Joining needs the founder running: compose starts joiners once the founder is
# healthy.
set -eu
role="$1"
name="$2"
invites=/invites
joined="$ORRERY_DATA_DIR/.federated"

if [ ! -e "$joined" ]; then
    case "$role" in
    founder)
        orrery federation create compose-federation
        for joiner in node2 node3; do
            # The founder is reached at its compose service name.
            orrery federation invite --code --ttl-hours 24 \
                --address /dns4/node1/tcp/4100 >"$invites/$joiner.token.tmp"
            mv "$invites/$joiner.token.tmp" "$invites/$joiner.token"
        done
        ;;
    joiner)
        tries=0
        until [ -s "$invites/$name.token" ]; do
            tries=$((tries + 1))
            if [ "$tries" -gt 120 ]; then
                echo "no invitation for $name in $invites after 120 s; is node1 running?" >&2
                exit 1
            fi
            sleep 1
        done
        orrery federation join "$(cat "$invites/$name.token")" --timeout 60
        touch "$invites/$name.joined"
        # Joiners run only once every joiner has joined: a member already running when another
        # is admitted can miss the gossip of that admission (see scripts/demo).
        tries=0
        until [ -e "$invites/node2.joined" ] && [ -e "$invites/node3.joined" ]; do
            tries=$((tries + 1))
            if [ "$tries" -gt 180 ]; then
                echo "the other joiner did not join within 180 s" >&2
                exit 1
            fi
            sleep 1
        done
        ;;
    *)
        echo "usage: federate.sh founder|joiner NAME" >&2
        exit 2
        ;;
    esac
    touch "$joined"
fi
exec orrery run
