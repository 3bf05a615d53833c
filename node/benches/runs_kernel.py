#!/usr/bin/env python3
"""The baseline of the runs benchmark: the same cell executed directly on a Jupyter kernel, in
the same lab, through the node's lab proxy, with Jupyter's own protocol (an execute_request on
the kernel's channels, until the kernel is idle again). The kernel is started and warmed first.

Usage (with the project's .venv):

    runs_kernel.py --node ADDR --token TOKEN --lab LAB --runs N --code CODE

Prints one JSON line: every sample in seconds, p50 and p95.
"""

import argparse
import asyncio
import json
import time
import urllib.request
import uuid

import websockets

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def percentile(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def start_kernel(node, token, lab, host):
    req = urllib.request.Request(
        f"http://{node}/labs/{lab}/api/kernels", data=b'{"name": "python3"}', method="POST")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Host", host)
    req.add_header("Content-Type", "application/json")
    with _opener.open(req, timeout=120) as resp:
        return json.loads(resp.read())["id"]


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
    host_name = f"{args.lab}.localhost"
    address, port = args.node.rsplit(":", 1)
    kernel = start_kernel(args.node, args.token, args.lab, f"{host_name}:{port}")
    session = uuid.uuid4().hex
    uri = f"ws://{host_name}:{port}/labs/{args.lab}/api/kernels/{kernel}/channels?session_id={session}"
    async with websockets.connect(uri, host=address, port=int(port), max_size=None,
                                  additional_headers={"Authorization": f"Bearer {args.token}"}) as ws:
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
    p.add_argument("--node", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--lab", required=True)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--code", default="1+1")
    asyncio.run(main(p.parse_args()))
