"""Runs code in a lab's kernel the way JupyterLab does, through the node's proxy: a kernel is
started over REST and `execute_request` is sent over the kernel's WebSocket, on the lab's own
host with an API token. Prints what the cell prints, then its `execute_result`; exits 1 on an
error. The kernel is shut down afterwards (a kernel that does not answer its stop is said so on
standard error, and left to the lab's stop).

Usage: lab-cell.py NODE_ADDR LAB_ID LAB_HOST TOKEN CODE
(needs the websocket-client package, which every lab environment has)
"""

import json
import sys
import urllib.request
import uuid

import websocket

addr, lab, host, token, code = sys.argv[1:6]
auth = {"Host": host, "Authorization": f"Bearer {token}"}
started = urllib.request.Request(
    f"http://{addr}/labs/{lab}/api/kernels",
    data=b'{"name": "python3"}',
    method="POST",
    headers={**auth, "Content-Type": "application/json"},
)
kernel = json.load(urllib.request.urlopen(started, timeout=60))
ws = websocket.create_connection(
    f"ws://{addr}/labs/{lab}/api/kernels/{kernel['id']}/channels",
    host=host,
    header=[f"Authorization: Bearer {token}"],
    suppress_origin=True,
    timeout=60,
)
msg_id = uuid.uuid4().hex
ws.send(json.dumps({
    "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "lab",
               "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
    "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
    "content": {"code": code, "silent": False, "store_history": False,
                "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
}))
while True:
    m = json.loads(ws.recv())
    if m.get("parent_header", {}).get("msg_id") != msg_id:
        continue
    if m["msg_type"] == "stream":
        print(m["content"]["text"], end="")
    if m["msg_type"] == "execute_result":
        print(m["content"]["data"]["text/plain"])
        break
    if m["msg_type"] == "error":
        print("ERROR", m["content"]["ename"], m["content"]["evalue"])
        sys.exit(1)
ws.close()
stopped = urllib.request.Request(
    f"http://{addr}/labs/{lab}/api/kernels/{kernel['id']}", method="DELETE", headers=auth
)
try:
    urllib.request.urlopen(stopped, timeout=60)
except OSError as e:
    # The cell ran and its answer is printed; a kernel whose lab is at its process limit (a
    # cell that forked until it was stopped) may not answer its stop in time. Stopping the lab
    # ends it.
    print(f"the kernel did not answer its stop ({e}); stopping the lab ends it", file=sys.stderr)
