#!/usr/bin/env python3
"""Baseline for the labs benchmark: JupyterHub with its default LocalProcessSpawner.

Usage (as root, with the interpreter of the venv that scripts/jupyterhub-env installs):

    target/bench-hub/venv/bin/python node/benches/labs_hub.py --runs N --user USER

Starts a JupyterHub (configurable-http-proxy from target/bench-hub, hub and proxy on free
ports of 127.0.0.1, a fresh database in a temporary directory) and drives it through its REST
API with a service token. Each run times "start USER's server" until "a kernel started
through the proxy answered 1+1 with 2". The first run also measures the resident memory of the
idle single-user server (after its kernel is deleted) and of the hub and proxy. One JSON line
is printed on stdout; progress and errors go to stderr. Every wait has a timeout, and the hub,
the proxy and every server or kernel seen are stopped on success and on failure.
"""

import argparse
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import websocket  # websocket-client

ROOT = Path(__file__).resolve().parents[2]
BENCH_HUB = ROOT / "target" / "bench-hub"
VENV_BIN = BENCH_HUB / "venv" / "bin"
CHP = BENCH_HUB / "node_modules" / ".bin" / "configurable-http-proxy"

POLL_S = 0.05
HUB_START_TIMEOUT_S = 90
SPAWN_TIMEOUT_S = 120
KERNEL_TIMEOUT_S = 60
SERVER_STOP_TIMEOUT_S = 60
HUB_STOP_TIMEOUT_S = 30
PROCESS_EXIT_TIMEOUT_S = 10
HTTP_TIMEOUT_S = 30

SERVICE = "labs-bench"


class BenchError(Exception):
    pass


def log(msg):
    print(f"labs_hub: {msg}", file=sys.stderr, flush=True)


def wait_for(what, timeout_s, check):
    """Call check every POLL_S until it returns a truthy value; raise after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(POLL_S)


# Requests go to 127.0.0.1 only: no proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, url, token=None, body=None, timeout=HTTP_TIMEOUT_S):
    """One HTTP request; returns (status, parsed JSON body, or text, or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if token:
        req.add_header("Authorization", f"token {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with _opener.open(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode(errors="replace")
    if not text.strip():
        return status, None
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --- processes, read from /proc -------------------------------------------------------------


def proc_table():
    """pid -> (ppid, start time in clock ticks) of every live, non-zombie process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after "pid (comm)": state ppid ... starttime is the 20th of them.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] in ("Z", "X"):
            continue
        table[int(entry)] = (int(fields[1]), int(fields[19]))
    return table


def subtree(root, table):
    """root and all its live descendants in table."""
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in table and pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def rss_kib(pid):
    """VmRSS of pid in KiB (0 if it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def uid_of(pid):
    """Real uid of pid, or None if it has gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def is_kernel(pid):
    return "ipykernel" in cmdline(pid)


def alive(pid, start):
    """Whether pid is still the process that started at start (not a reused pid)."""
    entry = proc_table().get(pid)
    return entry is not None and entry[1] == start


# --- the hub --------------------------------------------------------------------------------

CONFIG = """\
# Written by node/benches/labs_hub.py. Everything not set here is JupyterHub's default,
# notably the spawner (LocalProcessSpawner) and the proxy (configurable-http-proxy).
c = get_config()  # noqa
c.JupyterHub.bind_url = "http://127.0.0.1:{public_port}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.db_url = "sqlite:///{workdir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{workdir}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{workdir}/jupyterhub.pid"
c.ConfigurableHTTPProxy.command = ["{chp}"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = "{workdir}/proxy.pid"
c.JupyterHub.spawner_class = "localprocess"
# The spawner does not pass the hub's PATH on (Spawner.env_keep): the command is absolute and
# the server and its kernels get the venv's bin first on their PATH.
c.Spawner.cmd = ["{venv_bin}/jupyterhub-singleuser"]
c.Spawner.environment = {{"PATH": "{venv_bin}:/usr/local/bin:/usr/bin:/bin"}}
# No browser logins: the benchmark drives the REST API with a service token.
c.JupyterHub.authenticator_class = "null"
c.JupyterHub.services = [{{"name": "{service}", "api_token": "{token}"}}]
c.JupyterHub.load_roles = [
    {{
        "name": "{service}",
        "scopes": ["admin:users", "admin:servers", "tokens", "access:servers"],
        "services": ["{service}"],
    }}
]
"""


class Hub:
    def __init__(self, workdir, user_uid):
        self.workdir = workdir
        self.user_uid = user_uid
        public_port, hub_port, proxy_api_port = free_ports(3)
        self.url = f"http://127.0.0.1:{public_port}"
        self.token = secrets.token_hex(32)
        self.config = workdir / "jupyterhub_config.py"
        self.config.write_text(
            CONFIG.format(
                public_port=public_port,
                hub_port=hub_port,
                proxy_api_port=proxy_api_port,
                workdir=workdir,
                chp=CHP,
                venv_bin=VENV_BIN,
                service=SERVICE,
                token=self.token,
            )
        )
        self.log_path = workdir / "jupyterhub.log"
        self.proc = None
        self.stopped = False
        # pid -> start time of every process seen under the hub, stopped at the end if left.
        self.seen = {}

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "jupyterhub"), "-f", str(self.config)],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,  # no TTY: servers must not ask before stopping
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.remember()

        def up():
            self.check_running()
            try:
                status, body = http("GET", f"{self.url}/hub/api/", timeout=2)
            except OSError:
                return None
            return body if status == 200 and isinstance(body, dict) else None

        info = wait_for("the hub's API through the proxy", HUB_START_TIMEOUT_S, up)
        self.version = info.get("version", "unknown")
        self.remember()

    def check_running(self):
        if self.proc.poll() is not None:
            raise BenchError(f"jupyterhub exited with status {self.proc.returncode}")

    def api(self, method, path, body=None, expect=(200,)):
        """Call the hub's REST API with the service token; raise unless the status is expected."""
        self.check_running()
        status, answer = http(method, f"{self.url}/hub/api{path}", self.token, body)
        if status not in expect:
            self.check_running()
            raise BenchError(f"{method} /hub/api{path}: HTTP {status}: {answer}")
        return answer

    def remember(self):
        """Note the hub's process tree so that cleanup finds it even if the hub dies."""
        table = proc_table()
        for pid in subtree(self.proc.pid, table):
            self.seen[pid] = table[pid][1]

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no hub log)"

    def stop(self):
        """SIGTERM the hub (it stops its servers and the proxy), then end whatever is left."""
        if self.proc is None or self.stopped:
            return True
        self.stopped = True
        clean = True
        if self.proc.poll() is None:
            self.remember()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(HUB_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log(f"jupyterhub did not stop within {HUB_STOP_TIMEOUT_S} s; killing it")
                self.proc.kill()
                self.proc.wait()
                clean = False
        left = {pid: start for pid, start in self.seen.items() if alive(pid, start)}
        # Servers or kernels the hub started after the last remember() and orphaned by dying:
        # the bench user's processes from this venv, started after the hub.
        hub_start = self.seen.get(self.proc.pid, 0)
        for pid, (_, start) in proc_table().items():
            if (
                start >= hub_start
                and uid_of(pid) == self.user_uid
                and str(VENV_BIN.parent) in cmdline(pid)
            ):
                left[pid] = start
        if left:
            clean = False
            log(f"processes left after the hub stopped, ending them: {sorted(left)}")
            end_processes(left)
        return clean


def end_processes(procs):
    """SIGTERM each pid (pid -> start time), then SIGKILL those still there after a grace."""
    for pid, start in procs.items():
        if alive(pid, start):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + PROCESS_EXIT_TIMEOUT_S
    while time.monotonic() < deadline and any(alive(p, s) for p, s in procs.items()):
        time.sleep(POLL_S)
    for pid, start in procs.items():
        if alive(pid, start):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- one run --------------------------------------------------------------------------------


def server_model(hub, user):
    """USER's default server as the hub reports it, or None when it has none."""
    return hub.api("GET", f"/users/{user}")["servers"].get("")


def wait_ready(hub, user):
    def ready():
        server = server_model(hub, user)
        if server is None or (not server["ready"] and server["pending"] is None):
            raise BenchError(f"the server of {user} failed to start (see the hub log)")
        return server if server["ready"] else None

    return wait_for(f"the server of {user} to be ready", SPAWN_TIMEOUT_S, ready)


def execute_1_plus_1(ws_url, token):
    """Send an execute_request for 1+1 on the kernel's channels; return when '2' comes back."""
    session = uuid.uuid4().hex
    ws = websocket.create_connection(
        f"{ws_url}?session_id={session}",
        header=[f"Authorization: token {token}"],
        timeout=KERNEL_TIMEOUT_S,
    )
    try:
        msg_id = uuid.uuid4().hex
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "bench",
                        "session": session,
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": "1+1",
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        deadline = time.monotonic() + KERNEL_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"no execute_result for 1+1 within {KERNEL_TIMEOUT_S} s")
            ws.settimeout(remaining)
            try:
                msg = json.loads(ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "execute_result":
                answer = msg["content"]["data"].get("text/plain")
                if answer != "2":
                    raise BenchError(f"the kernel answered 1+1 with {answer!r}")
                return
            if kind == "error" or (kind == "execute_reply" and msg["content"]["status"] != "ok"):
                raise BenchError(f"the kernel failed on 1+1: {msg['content']}")
    finally:
        ws.close()


def run_once(hub, user, user_token, measure):
    """One start-to-answer sample in seconds, and the RSS figures if measure (else None)."""
    t0 = time.perf_counter()
    hub.api("POST", f"/users/{user}/server", expect=(201, 202))
    server = wait_ready(hub, user)
    t_ready = time.perf_counter()
    hub.remember()
    base = f"{hub.url}{server['url']}"
    status, kernel = http("POST", f"{base}api/kernels", user_token, {"name": "python3"})
    if status != 201 or not isinstance(kernel, dict):
        raise BenchError(f"POST {server['url']}api/kernels: HTTP {status}: {kernel}")
    t_kernel = time.perf_counter()
    hub.remember()
    ws_base = "ws" + base[len("http") :]
    execute_1_plus_1(f"{ws_base}api/kernels/{kernel['id']}/channels", user_token)
    t1 = time.perf_counter()
    log(
        f"server ready after {t_ready - t0:.3f} s, kernel created after {t_kernel - t_ready:.3f} s,"
        f" 1+1 answered after {t1 - t_kernel:.3f} s"
    )

    server_pid = server["state"]["pid"]
    kernels = {pid for pid in subtree(server_pid, proc_table()) if is_kernel(pid)}
    status, answer = http("DELETE", f"{base}api/kernels/{kernel['id']}", user_token)
    if status != 204:
        raise BenchError(f"DELETE {server['url']}api/kernels/{kernel['id']}: HTTP {status}: {answer}")
    wait_for(
        "the kernel process to exit",
        PROCESS_EXIT_TIMEOUT_S,
        lambda: not (kernels & set(proc_table())),
    )

    memory = None
    if measure:
        table = proc_table()
        lab = {pid for pid in subtree(server_pid, table) if not is_kernel(pid)}
        rest = subtree(hub.proc.pid, table) - subtree(server_pid, table)
        memory = {
            "idle_server_rss_mib": round(sum(map(rss_kib, lab)) / 1024, 1),
            "hub_and_proxy_rss_mib": round(sum(map(rss_kib, rest)) / 1024, 1),
        }
        log(
            "idle server processes: "
            + "; ".join(f"{pid} {rss_kib(pid)} KiB {cmdline(pid)[:80]}" for pid in sorted(lab))
        )
        log(
            "hub and proxy processes: "
            + "; ".join(f"{pid} {rss_kib(pid)} KiB {cmdline(pid)[:80]}" for pid in sorted(rest))
        )

    hub.api("DELETE", f"/users/{user}/server", expect=(202, 204))
    wait_for(
        f"the server of {user} to stop",
        SERVER_STOP_TIMEOUT_S,
        lambda: server_model(hub, user) is None,
    )
    return t1 - t0, memory


# --- main -----------------------------------------------------------------------------------


def percentile(samples, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(samples)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def ensure_user(user):
    """uid of the system user, created (with a home) when missing."""
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        log(f"creating the system user {user}")
        subprocess.run(["useradd", "-m", user], check=True)
        return pwd.getpwnam(user).pw_uid


def check_setup():
    if os.geteuid() != 0:
        raise BenchError("run as root: the local spawner starts servers as another system user")
    for path in (VENV_BIN / "jupyterhub", VENV_BIN / "jupyterhub-singleuser", CHP):
        if not os.access(path, os.X_OK):
            raise BenchError(f"{path} is missing; run scripts/jupyterhub-env first")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, required=True, help="number of timed starts")
    parser.add_argument("--user", required=True, help="system user the servers run as")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", args.user) or args.user == "root":
        parser.error("--user must be a plain system user name ([a-z_][a-z0-9_-]*), not root")

    # A SIGTERM (e.g. from the benchmark's harness) unwinds through the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    hub = None
    workdir = None
    ok = False
    try:
        check_setup()
        uid = ensure_user(args.user)
        workdir = Path(tempfile.mkdtemp(prefix="labs-hub-"))
        hub = Hub(workdir, uid)
        log(f"starting jupyterhub at {hub.url} (config and log in {workdir})")
        hub.start()
        log(f"jupyterhub {hub.version} is up")

        hub.api("POST", f"/users/{args.user}", expect=(201,))
        user_token = hub.api(
            "POST",
            f"/users/{args.user}/tokens",
            {"note": "labs benchmark", "expires_in": 3600},
            expect=(201, 200),
        )["token"]

        samples, memory = [], None
        for i in range(args.runs):
            sample, measured = run_once(hub, args.user, user_token, measure=(i == 0))
            memory = memory or measured
            samples.append(sample)
            log(f"run {i + 1}/{args.runs}: {sample:.3f} s")

        clean = hub.stop()
        if not clean:
            log("the hub did not stop cleanly (see above)")
        result = {
            "samples_s": [round(s, 4) for s in samples],
            "p50_s": round(percentile(samples, 0.50), 4),
            "p95_s": round(percentile(samples, 0.95), 4),
            **memory,
            "jupyterhub": hub.version,
        }
        print(json.dumps(result), flush=True)
        ok = True
    except (BenchError, subprocess.CalledProcessError, OSError, websocket.WebSocketException) as e:
        log(f"error: {e}")
        if hub is not None and hub.proc is not None:
            log(f"last lines of the hub log ({hub.log_path}):\n{hub.log_tail()}")
    finally:
        if hub is not None:
            hub.stop()
        if workdir is not None:
            if ok:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                log(f"kept {workdir} for inspection")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
