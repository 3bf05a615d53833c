"""Drives a node's REST API as a researcher's script would, from the node's own OpenAPI document:
operations are found by their operationId, and every request and answer is validated against the
document with openapi-core. Notebooks exported are checked with nbformat.

Usage: api_client.py BASE_URL TOKEN
"""

import json
import sys

import nbformat
import requests
from openapi_core import Config, OpenAPI
from openapi_core.contrib.requests import RequestsOpenAPIRequest, RequestsOpenAPIResponse

base, token = sys.argv[1], sys.argv[2]


def check(condition, message):
    if not condition:
        print("FAILED:", message)
        sys.exit(1)


spec = requests.get(base + "/api/openapi.json", timeout=30).json()
check(spec["openapi"].startswith("3.1"), f"OpenAPI {spec['openapi']}")
spec["servers"] = [{"url": base}]
# Checks the document against the OpenAPI 3.1 schema. A Jupyter notebook file is JSON
# (application/x-ipynb+json), read as such.
api = OpenAPI.from_dict(
    spec, config=Config(extra_media_type_deserializers={"application/x-ipynb+json": json.loads})
)

operations = {}
for path, item in spec["paths"].items():
    for method, op in item.items():
        operations[op["operationId"]] = (method.upper(), path)


def call(operation, params=None, body=None, bearer=token, expect=None):
    method, path = operations[operation]
    url = base + path.format(**(params or {}))
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    r = requests.request(method, url, json=body, headers=headers, timeout=60)
    api.validate_request(RequestsOpenAPIRequest(r.request))
    api.validate_response(RequestsOpenAPIRequest(r.request), RequestsOpenAPIResponse(r))
    if expect is not None:
        check(r.status_code == expect, f"{operation}: {r.status_code} {r.text}")
    return r


me = call("me", expect=200).json()
check(me["name"] == "Ada Lovelace", f"me: {me}")

# The session a page's header shows: the same user with a credential, nobody without one.
with_token = call("session", expect=200).json()
check(with_token["signed_in"]["user"] == me["user"], f"session: {with_token}")
anonymous_session = call("session", bearer=None, expect=200).json()
check(anonymous_session["signed_in"] is None, f"anonymous session: {anonymous_session}")

made = call("create", body={"title": "Crab pulsar timing", "visibility": "public",
                            "description": "Timing residuals"}, expect=201).json()
project = made["id"]
check(made["role"] == "owner", f"the founder owns it: {made}")

nb = call("add_notebook", {"project": project}, {"title": "Residuals"}, expect=201).json()
cell = call("add_cell", {"project": project, "notebook": nb["id"]},
            {"kind": "code", "source": "period = 0.0334"}, expect=201).json()
edited = call("set_source", {"project": project, "notebook": nb["id"], "cell": cell["id"]},
              {"source": "period = 0.03338"}, expect=200).json()
check(edited["source"] == "period = 0.03338", f"set_source: {edited}")
call("add_cell", {"project": project, "notebook": nb["id"]},
     {"kind": "markdown", "source": "# Residuals", "index": 0}, expect=201)

read = call("notebook", {"project": project, "notebook": nb["id"]}, expect=200).json()
check([c["kind"] for c in read["cells"]] == ["markdown", "code"], f"cell order: {read}")

# Who wrote each part: the runs of each cell, joined, are its source, and all are Ada's.
authorship = call("authorship", {"project": project, "notebook": nb["id"]}, expect=200).json()
check(["".join(s["text"] for s in c["spans"]) for c in authorship["cells"]]
      == [c["source"] for c in read["cells"]], f"authorship: {authorship}")
check({s["author"] for c in authorship["cells"] for s in c["spans"]} == {me["author"]},
      f"authorship authors: {authorship}")

# Out as a Jupyter notebook, valid by nbformat's own schema, and back in as a new notebook.
exported = call("export_notebook", {"project": project, "notebook": nb["id"]}, expect=200)
check(exported.headers["content-type"].startswith("application/x-ipynb+json"),
      exported.headers["content-type"])
notebook = nbformat.reads(exported.text, as_version=4)
nbformat.validate(notebook)
check([c.source for c in notebook.cells] == ["# Residuals", "period = 0.03338"],
      f"exported cells: {[c.source for c in notebook.cells]}")
imported = call("import_notebook", {"project": project},
                {"title": "Residuals (copy)", "notebook": json.loads(exported.text)},
                expect=201).json()
check([c["source"] for c in imported["cells"]] == ["# Residuals", "period = 0.03338"],
      f"imported: {imported}")

shown = call("show", {"project": project}, expect=200).json()
check(len(shown["notebooks"]) == 2, f"two notebooks: {shown}")
check(shown["description"] == "Timing residuals", f"description: {shown}")
credits = call("credits", {"project": project}, expect=200).json()
check(credits["authors"][0]["name"] == "Ada Lovelace" and credits["authors"][0]["chars"] > 0,
      f"credits: {credits}")
history = call("history", {"project": project}, expect=200).json()
check(len(history) > 0 and all(h["author"] == me["author"] for h in history if h["author"]),
      f"history: {history[:3]}")

comment = call("add_comment", {"project": project},
               {"target": cell["id"], "text": "Check against the ephemeris"}, expect=201).json()
comments = call("comments", {"project": project}, expect=200).json()
check([c["id"] for c in comments] == [comment["id"]], f"comments: {comments}")

patched = call("patch", {"project": project}, {"title": "Crab pulsar timing"}, expect=200).json()
check(patched["title"] == "Crab pulsar timing", f"patch: {patched}")
listed = call("list", expect=200).json()
check([p["id"] for p in listed] == [project], f"list: {listed}")

# Anyone may read a public project; a bad request is a JSON error with a stable code.
call("show", {"project": project}, bearer=None, expect=200)
bad = call("add_cell", {"project": project, "notebook": nb["id"]},
           {"kind": "spreadsheet", "source": ""}, expect=400).json()
check(bad["error"]["code"] == "invalid", f"bad kind: {bad}")
missing = call("show", {"project": "p" * 10}, expect=404).json()
check(missing["error"]["code"] == "not_found", f"missing: {missing}")

# A narrower token for a script, used, then revoked: it stops working at once.
new = call("create_token", body={"scopes": ["read"], "days": 1}, expect=201).json()
check(new["scopes"] == ["read"], f"token: {new}")
check(call("me", bearer=new["token"], expect=200).json()["user"] == me["user"], "token user")
refused = call("add_notebook", {"project": project}, {"title": "x"}, bearer=new["token"],
               expect=403).json()
check(refused["error"]["code"] == "insufficient_scope", f"read token wrote: {refused}")
listed_tokens = call("tokens", expect=200).json()
check(new["id"] in [t["id"] for t in listed_tokens], f"tokens: {listed_tokens}")
call("revoke_token", {"id": new["id"]}, expect=204)
gone = call("me", bearer=new["token"], expect=401).json()
check(gone["error"]["code"] == "unauthenticated", f"revoked token: {gone}")

# The same projects through GraphQL (the gql client), as the user and anonymously: a restricted
# project is seen only by its member.
hidden = call("create", body={"title": "Embargoed", "visibility": "restricted"}, expect=201).json()
from gql import Client, gql  # noqa: E402
from gql.transport.exceptions import TransportQueryError  # noqa: E402
from gql.transport.requests import RequestsHTTPTransport  # noqa: E402


def graphql(query, variables=None, bearer=token):
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    transport = RequestsHTTPTransport(url=base + "/graphql", headers=headers, timeout=30)
    with Client(transport=transport) as session:
        return session.execute(gql(query), variable_values=variables)


seen = graphql(
    """query($p: String!, $nb: String!) {
         me { name }
         projects { id title role }
         project(id: $p) { title members { name role } notebooks { id title } }
         notebook(project: $p, id: $nb) { cells { kind source } }
       }""",
    {"p": project, "nb": nb["id"]},
)
check(seen["me"]["name"] == "Ada Lovelace", f"graphql me: {seen['me']}")
check(sorted(p["title"] for p in seen["projects"]) == ["Crab pulsar timing", "Embargoed"],
      f"graphql projects: {seen['projects']}")
check(seen["project"]["members"] == [{"name": "Ada Lovelace", "role": "owner"}],
      f"graphql members: {seen['project']}")
check([c["source"] for c in seen["notebook"]["cells"]] == ["# Residuals", "period = 0.03338"],
      f"graphql cells: {seen['notebook']}")
anonymous = graphql("{ me { name } projects { title } }", bearer=None)
check(anonymous["me"] is None and [p["title"] for p in anonymous["projects"]] == ["Crab pulsar timing"],
      f"anonymous graphql: {anonymous}")
try:
    graphql("query($p: String!) { project(id: $p) { title } }", {"p": hidden["id"]}, bearer=None)
    check(False, "an anonymous caller read a restricted project")
except TransportQueryError as e:
    check(e.errors[0]["extensions"]["code"] == "not_found", f"restricted: {e.errors}")

# Search and the federation through the same API.
found = call("search", body={"text": "crab"}, expect=200).json()
check("hits" in found or "results" in found, f"search: {list(found)}")
print("ok")
