#!/usr/bin/env python3
"""The baseline of the runs benchmark: the same cell executed directly on a Jupyter kernel of
the same lab, with Jupyter's own protocol (an execute_request on the kernel's channels until the
kernel is idle again). The kernel is started and warmed first.

With --socket, the client talks to the lab's server on its Unix socket with the server's own
token (read from the server's command line, as root), exactly as the node's kernel client does:
the baseline. With --node, it goes through the node's lab proxy instead (the way a browser's
JupyterLab reaches the kernel), with an API token.

Usage (with the project's .venv):

    runs_kernel.py --lab LAB --socket PATH --runs N --code CODE
    runs_kernel.py --lab LAB --node ADDR --token TOKEN --runs N --code CODE

Prints one JSON line: every sample in seconds, p50 and p95.
"""

import argparse
import asyncio
import http.client
import json
import os
import socket
import time
import uuid

import websockets


def percentile(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def server_token(lab):
    """The token the lab's server was started with (on its command line)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(a.startswith("--ServerApp.base_url=") and f"/{lab}/" in a for a in args):
            for a in args:
                if a.startswith("--IdentityProvider.token="):
                    return a.split("=", 1)[1]
    raise SystemExit(f"no server of lab {lab} found")


def start_kernel(conn, base, headers):
    conn.request("POST", f"{base}api/kernels", body=b'{"name": "python3"}', headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 201:
        raise SystemExit(f"no kernel: {resp.status} {body[:200]!r}")
    return json.loads(body)["id"]


async def execute(ws, session, code):
    msg_id = uuid.uuid4().hex
    await ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "bench",
                   "session": session, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    while True:
        msg = json.loads(await ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["header"]["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return


async def main(args):
    base = f"/labs/{args.lab}/"
    session = uuid.uuid4().hex
    if args.socket:
        headers = {"Authorization": f"token {server_token(args.lab)}",
                   "Content-Type": "application/json"}
        kernel = start_kernel(UnixHTTPConnection(args.socket), base, headers)
        uri = f"ws://localhost{base}api/kernels/{kernel}/channels?session_id={session}"
        connect = websockets.unix_connect(args.socket, uri, max_size=None,
                                          additional_headers=headers)
    else:
        address, port = args.node.rsplit(":", 1)
        host = f"{args.lab}.localhost:{port}"
        headers = {"Authorization": f"Bearer {args.token}", "Host": host,
                   "Content-Type": "application/json"}
        kernel = start_kernel(http.client.HTTPConnection(address, int(port)), base, headers)
        uri = f"ws://{host}{base}api/kernels/{kernel}/channels?session_id={session}"
        connect = websockets.connect(uri, host=address, port=int(port), max_size=None,
                                     additional_headers={"Authorization": f"Bearer {args.token}"})
    async with connect as ws:
        await execute(ws, session, args.code)
        samples = []
        for _ in range(args.runs):
            t0 = time.monotonic()
            await execute(ws, session, args.code)
            samples.append(round(time.monotonic() - t0, 5))
    print(json.dumps({"samples_s": samples, "p50_s": percentile(samples, 0.5),
                      "p95_s": percentile(samples, 0.95)}))


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--lab", required=True)
    p.add_argument("--socket")
    p.add_argument("--node")
    p.add_argument("--token")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--code", default="1+1")
    a = p.parse_args()
    if not a.socket and not (a.node and a.token):
        p.error("give --socket, or --node and --token")
    asyncio.run(main(a))
