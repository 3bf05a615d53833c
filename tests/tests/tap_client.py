"""Drives a node's TAP service with pyvo, as an astronomer would, and checks the rows.

The node holds 6 XMM-Newton products of the Crab Nebula near (83.63, 22.01) and 3 of M87 near
(187.7, 12.39). Usage: tap_client.py http://HOST:PORT/tap
"""

import sys
import warnings

import pyvo
from astropy.io.votable.exceptions import VOWarning
from pyvo.dal.exceptions import DALOverflowWarning, DALQueryError, DALServiceError

url = sys.argv[1]
service = pyvo.dal.TAPService(url)


def check(condition, message):
    if not condition:
        print("FAILED:", message)
        sys.exit(1)


# VOSI: the table and its columns, the limits.
tables = service.tables
names = [t.name for t in tables]
check(names[0] == "ivoa.obscore" and "TAP_SCHEMA.columns" in names, f"tables: {names}")

# TAP_SCHEMA through ADQL, and aggregates over ivoa.obscore.
cols = service.search(
    "SELECT column_name, datatype FROM TAP_SCHEMA.columns WHERE table_name = 'ivoa.obscore'"
).to_table()
check(len(cols) == len(tables["ivoa.obscore"].columns), f"TAP_SCHEMA.columns: {len(cols)}")
check(dict(zip(cols["column_name"], cols["datatype"]))["obs_title"] == "unicodeChar", cols)
counts = service.search(
    "SELECT target_name, COUNT(*) AS n, AVG(s_ra) FROM ivoa.obscore "
    "GROUP BY target_name HAVING COUNT(*) > 1 ORDER BY n DESC"
).to_table()
check(list(counts["target_name"]) == ["Crab Nebula", "M87"], counts)
check(list(counts["n"]) == [6, 3], counts)
check(str(counts["n"].dtype).startswith("int"), counts["n"].dtype)
columns = {c.name for c in tables["ivoa.obscore"].columns}
check({"s_ra", "s_dec", "obs_id", "t_min", "dataproduct_type", "access_url"} <= columns, columns)
check(service.maxrec == 10000 and service.hardlimit == 100000, (service.maxrec, service.hardlimit))

# A cone around the Crab, synchronously.
with warnings.catch_warnings():
    warnings.simplefilter("error", VOWarning)
    result = service.search(
        "SELECT TOP 20 obs_id, target_name, s_ra, s_dec, t_min, access_url FROM ivoa.obscore "
        "WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 83.63, 22.01, 0.5)) = 1 "
        "ORDER BY t_min"
    )
table = result.to_table()
check(len(table) == 6, f"crab cone: {len(table)} rows")
check(set(table["target_name"]) == {"Crab Nebula"}, set(table["target_name"]))
check(list(table["t_min"]) == sorted(table["t_min"]), "ordered by t_min")
check(str(table["s_ra"].unit) == "deg", table["s_ra"].unit)
check(all(u.startswith(url[: -len("/tap")] + "/data/xmm-crab/") for u in table["access_url"]), table["access_url"])

# The same asynchronously (UWS).
job = service.run_async(
    "SELECT obs_id, target_name FROM ivoa.obscore WHERE target_name LIKE 'M8%' AND t_exptime >= 1000"
)
check(len(job) == 3 and set(job.to_table()["target_name"]) == {"M87"}, job.to_table())

# A pending job's parameters may be changed (UWS POST {job}/parameters), a finished job's not.
job = service.submit_job("SELECT obs_id FROM ivoa.obscore WHERE target_name = 'nothing'")
check(job.phase == "PENDING", job.phase)
job.query = "SELECT obs_id FROM ivoa.obscore WHERE target_name = 'M87'"
check("M87" in job.query, job.query)
job.run()
job.wait(timeout=30)
check(len(job.fetch_result()) == 3, "the changed query ran")
try:
    job.query = "SELECT obs_id FROM ivoa.obscore"
except Exception as e:  # pyvo raises its DAL errors or requests' HTTPError, by version
    check("PENDING" in str(e) or "400" in str(e), f"finished job refused: {e}")
else:
    check(False, "a finished job's parameters were changed")
job.delete()

# Comparisons, IN, BETWEEN.
rows = service.search(
    "SELECT obs_id FROM ivoa.obscore WHERE dataproduct_type IN ('image', 'cube') "
    "AND s_dec BETWEEN 12 AND 13"
).to_table()
check(len(rows) == 3, f"between: {len(rows)}")

# MAXREC cuts the answer and says so (pyvo warns only when the cut is not the one asked for).
few = service.search("SELECT * FROM ivoa.obscore", maxrec=2)
check(len(few) == 2, len(few))
check(few.query_status.lower() == "overflow", few.query_status)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    service.search("SELECT * FROM ivoa.obscore")
check(not any(issubclass(w.category, DALOverflowWarning) for w in caught), "9 rows fit")

# Unsupported ADQL and other tables get an error saying what, never rows.
for query, words in [
    ("SELECT * FROM sqlite_master", "unknown table"),
    ("SELECT obs_id, COUNT(*) FROM ivoa.obscore GROUP BY target_name", "GROUP BY"),
    ("SELECT COUNT(MAX(s_ra)) FROM ivoa.obscore", "nested"),
    ("SELECT * FROM ivoa.obscore WHERE obs_id = 'x' OR 1=1", ""),
    ("SELECT * FROM ivoa.obscore; DROP TABLE products", ""),
]:
    try:
        service.search(query)
    except (DALQueryError, DALServiceError) as e:
        check(words.lower() in str(e).lower(), f"{query!r}: {e}")
    else:
        check(False, f"{query!r} was answered")

# The HTTP layer's refusals under /tap are VOTable error documents too.
import requests  # noqa: E402  (pyvo's own HTTP client)

for what, response, status in [
    ("unknown URL", requests.get(url + "/no/such/thing"), 404),
    ("unknown job resource", requests.get(url + "/async/x/nothing/here"), 404),
    ("JSON body", requests.post(url + "/sync", json={"QUERY": "SELECT * FROM ivoa.obscore"}), 415),
    ("body over the limit", requests.post(url + "/sync", data={"QUERY": "x" * (2 << 20)}), 413),
    ("method not taken", requests.delete(url + "/sync"), 405),
]:
    check(response.status_code == status, f"{what}: status {response.status_code}")
    check("xml" in response.headers.get("content-type", ""), f"{what}: {response.headers}")
    check('name="QUERY_STATUS" value="ERROR"' in response.text, f"{what}: {response.text}")

# Asynchronous jobs belong to their creator: the job URL's random id is the capability, the
# listing shows only the jobs of the owner cookie presented, and the cap is per address with
# the oldest finished jobs forgotten first.
query = {"LANG": "ADQL", "QUERY": "SELECT obs_id FROM ivoa.obscore"}
created = requests.post(url + "/async", data=query, allow_redirects=False)
check(created.status_code == 303, f"create: {created.status_code}")
job_url = created.headers["location"]
job_id = job_url.rsplit("/", 1)[1]
owner = created.cookies.get("orrery_tap_owner")
check(owner and len(job_id) >= 24, f"owner cookie {owner!r}, job id {job_id!r}")
check(job_id not in requests.get(url + "/async").text, "a stranger's listing shows the job")
mine = {"orrery_tap_owner": owner}
check(job_id in requests.get(url + "/async", cookies=mine).text, "the owner's listing lacks it")
check(requests.delete(url + "/async/" + "0" * 24).status_code == 404, "a guessed id was deleted")
jobs = [job_url]
refused = None
for _ in range(80):
    r = requests.post(url + "/async", data=query, cookies=mine, allow_redirects=False)
    if r.status_code != 303:
        refused = r
        break
    jobs.append(r.headers["location"])
check(refused is not None and refused.status_code == 503, "no per-client cap")
check('value="ERROR"' in refused.text and "unfinished" in refused.text, refused.text)
done = requests.post(jobs[0] + "/phase", data={"PHASE": "RUN"})
for _ in range(100):
    if requests.get(jobs[0] + "/phase").text in ("COMPLETED", "ERROR"):
        break
    requests.get(jobs[0] + "?WAIT=1&PHASE=EXECUTING")
check(requests.get(jobs[0] + "/phase").text == "COMPLETED", "the first job ran")
again = requests.post(url + "/async", data=query, cookies=mine, allow_redirects=False)
check(again.status_code == 303, f"the finished job was not evicted: {again.status_code}")
check(requests.get(jobs[0]).status_code == 404, "the oldest finished job is still kept")
for j in jobs[1:] + [again.headers["location"]]:
    requests.delete(j)

# The catalog is intact after all that.
check(len(service.search("SELECT obs_id FROM ivoa.obscore")) == 9, "rows after hostile queries")
print("all TAP checks passed")
