"""Uses a node's HTTP face once (a local search, a TAP query), then scrapes its metrics listener
as Prometheus would and parses the answer with the Prometheus project's own OpenMetrics parser,
which refuses anything that breaks the format.

Usage: metrics_scrape.py WEB_URL METRICS_URL SEARCH_JSON
Prints the samples as JSON: [[name, {label: value}, value], ...].
"""

import json
import sys
import urllib.parse
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

web, metrics, search = sys.argv[1], sys.argv[2], sys.argv[3]


def fail(message):
    print("FAILED:", message)
    sys.exit(1)


req = urllib.request.Request(
    web + "/api/search?local=true",
    data=search.encode(),
    headers={"Content-Type": "application/json"},
    method="POST",
)
with urllib.request.urlopen(req, timeout=30) as r:
    if r.status != 200:
        fail(f"search answered {r.status}")
query = urllib.parse.urlencode(
    {"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": "SELECT TOP 1 obs_id FROM ivoa.obscore"}
)
with urllib.request.urlopen(web + "/tap/sync?" + query, timeout=30) as r:
    if r.status != 200:
        fail(f"TAP answered {r.status}")

req = urllib.request.Request(
    metrics + "/metrics",
    headers={"Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"},
)
with urllib.request.urlopen(req, timeout=30) as r:
    ctype = r.headers.get("Content-Type", "")
    text = r.read().decode("utf-8")
if not ctype.startswith("application/openmetrics-text"):
    fail(f"content type {ctype!r}")
try:
    families = list(text_string_to_metric_families(text))
except Exception as e:  # the parser raises ValueError and friends on any format error
    fail(f"not OpenMetrics: {e}\n{text}")
samples = [[s.name, dict(s.labels), s.value] for f in families for s in f.samples]
print(json.dumps(samples))
