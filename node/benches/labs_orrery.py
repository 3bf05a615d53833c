#!/usr/bin/env python3
"""The Orrery side of the labs benchmark, measured with the same client as the JupyterHub
baseline (labs_hub.py): time from a lab request to a kernel answering 1+1 through the node's
proxy, memory of an idle lab, and how many labs a node holds at once.

Usage (with the interpreter of the venv scripts/jupyterhub-env installs):

    labs_orrery.py spawn --node ADDR --token TOKEN --runs N [--data COLLECTION]
    labs_orrery.py hold --node ADDR --token TOKEN --labs N

ADDR is the node's HTTP address (host:port); the lab asked for there runs wherever its data is.
One JSON line is printed on stdout; progress goes to stderr.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import websocket  # websocket-client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from labs_hub import BenchError, percentile, proc_table, rss_kib, subtree, cmdline  # noqa: E402

TIMEOUT_S = 600
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def log(msg):
    print(f"labs_orrery: {msg}", file=sys.stderr, flush=True)


def http(method, url, token, body=None, host=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if host:
        req.add_header("Host", host)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with _opener.open(req, timeout=TIMEOUT_S) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text) if text.strip() else None
    except ValueError:
        return status, text


def start_lab(node, token, data):
    status, lab = http("POST", f"http://{node}/api/v1/labs", token,
                       {"environment": "jupyter", "datasets": data})
    if status != 201 or lab.get("state") != "running":
        raise BenchError(f"the lab did not start: {status} {lab}")
    return lab


def stop_lab(node, token, lab):
    status, answer = http("DELETE", f"http://{node}/api/v1/labs/{lab}", token)
    if status != 200:
        raise BenchError(f"the lab did not stop: {status} {answer}")


def one_plus_one(node, token, lab):
    """A kernel started through the proxy answers 1+1; returns the kernel's id."""
    port = node.rsplit(":", 1)[1]
    host = f"{lab}.localhost:{port}"
    status, kernel = http("POST", f"http://{node}/labs/{lab}/api/kernels", token,
                          {"name": "python3"}, host=host)
    if status != 201:
        raise BenchError(f"no kernel: {status} {kernel}")
    session = uuid.uuid4().hex
    ws = websocket.create_connection(
        f"ws://{node}/labs/{lab}/api/kernels/{kernel['id']}/channels?session_id={session}",
        host=host, header=[f"Authorization: Bearer {token}"], suppress_origin=True,
        timeout=TIMEOUT_S)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "bench",
                       "session": session, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": "1+1", "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        while True:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "execute_result":
                if msg["content"]["data"].get("text/plain") != "2":
                    raise BenchError(f"1+1 answered {msg['content']}")
                return kernel["id"], host
            if kind == "error":
                raise BenchError(f"the kernel failed on 1+1: {msg['content']}")
    finally:
        ws.close()


def lab_rss_mib(lab):
    """Resident memory of every process of the lab's sandbox (bubblewrap and what runs in it)."""
    table = proc_table()
    roots = [pid for pid in table
             if f"/labs/{lab}/" in cmdline(pid) and "bwrap" in cmdline(pid).split(" ")[0]]
    pids = set()
    for root in roots:
        pids |= subtree(root, table)
    if not pids:
        raise BenchError(f"no process of {lab} found")
    return round(sum(rss_kib(p) for p in pids) / 1024, 1)


def spawn(args):
    samples, idle = [], None
    for i in range(args.runs):
        t0 = time.monotonic()
        lab = start_lab(args.node, args.token, args.data)
        kernel, host = one_plus_one(args.node, args.token, lab["id"])
        samples.append(round(time.monotonic() - t0, 4))
        log(f"run {i + 1}: {samples[-1]} s (lab {lab['id']} at node {lab['node']})")
        if i == 0 and args.measure_memory:
            http("DELETE", f"http://{args.node}/labs/{lab['id']}/api/kernels/{kernel}",
                 args.token, host=host)
            idle = lab_rss_mib(lab["id"])
        stop_lab(args.node, args.token, lab["id"])
    print(json.dumps({"samples_s": samples, "p50_s": percentile(samples, 0.5),
                      "p95_s": percentile(samples, 0.95), "idle_lab_rss_mib": idle}))


def hold(args):
    labs, rss = [], []
    try:
        for i in range(args.labs):
            status, lab = http("POST", f"http://{args.node}/api/v1/labs", args.token,
                               {"environment": "jupyter", "datasets": []})
            if status != 201 or lab.get("state") != "running":
                log(f"lab {i + 1} did not start: {status} {lab}")
                break
            labs.append(lab["id"])
            rss.append(lab_rss_mib(lab["id"]))
            log(f"{len(labs)} labs held, the last {rss[-1]} MiB")
    finally:
        for lab in labs:
            stop_lab(args.node, args.token, lab)
    print(json.dumps({"held": len(labs), "rss_mib_each_mean": round(sum(rss) / max(len(rss), 1), 1),
                      "rss_mib_total": round(sum(rss), 1)}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("spawn")
    s.add_argument("--node", required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--runs", type=int, default=5)
    s.add_argument("--data", action="append", default=[])
    s.add_argument("--measure-memory", action="store_true")
    h = sub.add_parser("hold")
    h.add_argument("--node", required=True)
    h.add_argument("--token", required=True)
    h.add_argument("--labs", type=int, default=20)
    args = p.parse_args()
    try:
        spawn(args) if args.what == "spawn" else hold(args)
    except BenchError as e:
        log(f"failed: {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
