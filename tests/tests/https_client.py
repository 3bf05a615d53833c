"""Talks to a node's HTTPS listener as a researcher's tools would: Python's ssl verifying the
node's certificate against the given CA file, then pyvo (through requests, trusting the same CA)
running a TAP query. Plain HTTP on the TLS port must fail.

Usage: https_client.py HTTPS_URL CA_FILE
"""

import os
import socket
import ssl
import sys
import urllib.parse
import urllib.request

url, ca = sys.argv[1], sys.argv[2]


def check(condition, message):
    if not condition:
        print("FAILED:", message)
        sys.exit(1)


context = ssl.create_default_context(cafile=ca)
with urllib.request.urlopen(url + "/", context=context, timeout=30) as r:
    index = r.read().decode()
    check(r.status == 200, f"index answered {r.status}")
    check(f"TAP service: {url}/tap" in index, f"the node names its HTTPS address: {index}")

parsed = urllib.parse.urlsplit(url)
with socket.create_connection((parsed.hostname, parsed.port), timeout=30) as raw:
    with context.wrap_socket(raw, server_hostname=parsed.hostname) as tls:
        check(tls.version() == "TLSv1.3", f"negotiated {tls.version()}")

# Without the CA the certificate is not trusted: verification is on.
try:
    urllib.request.urlopen(url + "/", context=ssl.create_default_context(), timeout=30)
    check(False, "an untrusted certificate was accepted")
except urllib.error.URLError as e:
    check("CERTIFICATE_VERIFY_FAILED" in str(e), f"unexpected failure: {e}")

# Plain HTTP to the TLS port is refused (no HTTP answer comes back).
try:
    urllib.request.urlopen(url.replace("https://", "http://") + "/", timeout=10)
    check(False, "plain HTTP was answered on the TLS port")
except Exception:
    pass

os.environ["REQUESTS_CA_BUNDLE"] = ca
import pyvo  # noqa: E402  (after the CA is set for requests)

service = pyvo.dal.TAPService(url + "/tap")
rows = service.run_sync("SELECT TOP 5 obs_id FROM ivoa.obscore")
check(len(rows) == 0, f"an empty catalog answered {len(rows)} rows")
names = [t.name for t in service.tables]
check("ivoa.obscore" in names and "TAP_SCHEMA.tables" in names, f"VOSI tables over HTTPS: {names}")
print("ok")
