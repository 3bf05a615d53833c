"""A signed-in user's TAP asynchronous job, through pyvo with an API token: it names its owner,
runs and answers for that user, and is refused to another user and to anonymous requests, which
do not see it listed either.

Usage: tap_owner_client.py BASE_URL OWNER_TOKEN OTHER_TOKEN
"""

import sys

import pyvo
import requests

base, mine, theirs = sys.argv[1], sys.argv[2], sys.argv[3]


def check(condition, message):
    if not condition:
        print("FAILED:", message)
        sys.exit(1)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


session = requests.Session()
session.headers.update(bearer(mine))
service = pyvo.dal.TAPService(base + "/tap", session=session)
job = service.submit_job("SELECT TOP 3 obs_id FROM ivoa.obscore")
check(job.owner == "Alice Owner", f"the job names its owner: {job.owner!r}")
job.run()
job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
job.raise_if_error()
check(len(job.fetch_result()) == 0, "an empty catalog answers no rows")

for who, headers, status in [("another user", bearer(theirs), 403), ("no one", {}, 401)]:
    for method, url in [("GET", job.url), ("GET", job.url + "/results/result"),
                        ("POST", job.url + "/phase"), ("DELETE", job.url)]:
        r = requests.request(method, url, headers=headers, data={"PHASE": "ABORT"}, timeout=30)
        check(r.status_code == status, f"{method} {url} as {who}: {r.status_code}")
        check("QUERY_STATUS" in r.text and "ERROR" in r.text, f"a VOTable error: {r.text[:200]}")
    listed = requests.get(base + "/tap/async", headers=headers, timeout=30).text
    check(job.job_id not in listed, f"{who} sees the job listed")
check(job.job_id in requests.get(base + "/tap/async", headers=bearer(mine), timeout=30).text,
      "the owner sees the job listed")
check(job.phase == "COMPLETED", f"the refused requests changed the job: {job.phase}")
job.delete()
print("ok")
