"""A GraphQL client (the `gql` package) against a node: a federated search over HTTP, a query
the node must refuse with errors (not a crash), then a subscription over WebSocket that waits for
a change to the node's catalog. Prints one JSON line per step; the Rust test judges them."""
import asyncio
import json
import sys

from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport
from gql.transport.websockets import WebsocketsTransport

base = sys.argv[1]


def say(**what):
    print(json.dumps(what), flush=True)


http = Client(transport=RequestsHTTPTransport(url=f"{base}/graphql", timeout=20), fetch_schema_from_transport=True)
with http as session:
    r = session.execute(
        gql(
            """
            query ($text: String!) {
              search(text: $text, limit: 50, filters: [{facet: MISSION, values: ["XMM-Newton"]}]) {
                total
                hits { title mission nodeName url blake3 }
                facets { facet values { value count } }
                answered
                missing { node reason }
              }
              federation { name members { name institution reach collections { id products } } }
            }
            """
        ),
        variable_values={"text": "crab"},
    )
    say(step="search", answer=r)
    try:
        session.execute(gql("query { search(limit: 100000) { total } }"))
        say(step="refused", refused=False)
    except TransportQueryError as e:
        say(step="refused", refused=True, message=str(e))


async def subscribe():
    ws = base.replace("http://", "ws://") + "/graphql/ws"
    transport = WebsocketsTransport(url=ws, subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL])
    async with Client(transport=transport) as session:
        sub = session.subscribe(gql("subscription { changes { kind project heads } }"))
        say(step="subscribed")
        async for change in sub:
            say(step="change", change=change)
            return


asyncio.run(asyncio.wait_for(subscribe(), timeout=30))
