"""Static checks of deploy/: what can be checked without a container engine or a cluster.

- deploy/k8s: every manifest validates against the Kubernetes JSON schemas (strict: no unknown
  fields) of the oldest and newest versions kubernetes-validate ships, offline; the names that
  tie the objects together (ConfigMap, ports, selectors, kustomization) resolve; the pod runs as
  non-root with a read-only root file system; the ports in the ConfigMap's orrery.toml are the
  container's ports. The ConfigMap's orrery.toml is written to OUT/k8s-orrery.toml for the node's
  own parser.
- deploy/compose.yaml: parses; build context, Containerfile, bind-mounted files and scripts exist;
  named volumes are declared; each node's config listens on the ports the file maps and checks.
- deploy/Containerfile: every COPY source exists in the workspace; every workspace member is
  copied; the runtime stage runs as a non-root user; health check and EXPOSE match the default
  ports; the Rust image is at least the workspace's rust-version.

Usage: deploy_check.py WORKSPACE OUT. Prints what it checked; exits 1 naming every problem.
"""

import os
import re
import shlex
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import yaml

root = Path(sys.argv[1]).resolve()
out = Path(sys.argv[2])
deploy = root / "deploy"
problems = []


def problem(msg):
    problems.append(msg)


def port_of(addr):
    """The port of "host:port"."""
    return int(addr.rsplit(":", 1)[1])


# ---- Kubernetes -------------------------------------------------------------------------------

SCHEMA_DIR = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
versions = sorted(
    (tuple(int(x) for x in d.name[1:].split("-")[0].split(".")) for d in SCHEMA_DIR.iterdir()
     if d.name.endswith("-local-strict")),
)
k8s_versions = [".".join(map(str, versions[0])), ".".join(map(str, versions[-1]))]

k8s = deploy / "k8s"
objects = []
manifests = sorted(p for p in k8s.glob("*.yaml") if p.name != "kustomization.yaml")
for path in manifests:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        objects.append((path.name, doc))
        for v in k8s_versions:
            try:
                kubernetes_validate.validate(doc, v, strict=True)
            except Exception as e:  # ValidationError, or an unknown kind/version
                first = str(e).splitlines()[0]
                problem(f"k8s/{path.name}: {doc.get('kind')} {doc['metadata']['name']} "
                        f"is invalid for Kubernetes {v}: {first}")
print(f"k8s: {len(objects)} objects in {len(manifests)} files validated against "
      f"Kubernetes {' and '.join(k8s_versions)} (strict)")

kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())
if sorted(kustomization.get("resources", [])) != sorted(p.name for p in manifests):
    problem(f"k8s/kustomization.yaml lists {kustomization.get('resources')}, "
            f"the directory holds {[p.name for p in manifests]}")

by_kind = {}
for name, doc in objects:
    by_kind.setdefault(doc["kind"], []).append(doc)

config_toml = None
for cm in by_kind.get("ConfigMap", []):
    if "orrery.toml" in cm.get("data", {}):
        config_toml = cm["data"]["orrery.toml"]
        (out / "k8s-orrery.toml").write_text(config_toml)
if config_toml is None:
    problem("k8s: no ConfigMap holds orrery.toml")

for sts in by_kind.get("StatefulSet", []):
    pod = sts["spec"]["template"]["spec"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    if sts["spec"]["selector"]["matchLabels"].items() - labels.items():
        problem("k8s: the StatefulSet's selector does not match its pod labels")
    sc = pod.get("securityContext", {})
    if not sc.get("runAsNonRoot") or sc.get("runAsUser", 0) == 0:
        problem("k8s: the pod must run as a non-root user")
    if sc.get("fsGroup") and sc.get("fsGroupChangePolicy") != "OnRootMismatch":
        problem("k8s: fsGroup without fsGroupChangePolicy: OnRootMismatch makes keys group-readable")
    services = {s["metadata"]["name"] for s in by_kind.get("Service", [])}
    if sts["spec"]["serviceName"] not in services:
        problem(f"k8s: serviceName {sts['spec']['serviceName']} is no Service")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", [])}
    configmaps = {c["metadata"]["name"] for c in by_kind.get("ConfigMap", [])}
    for v in volumes.values():
        if "configMap" in v and v["configMap"]["name"] not in configmaps:
            problem(f"k8s: volume {v['name']} names ConfigMap {v['configMap']['name']}, not defined")
    for c in pod["containers"]:
        if not c.get("securityContext", {}).get("readOnlyRootFilesystem"):
            problem(f"k8s: container {c['name']} should have a read-only root file system")
        if c.get("securityContext", {}).get("allowPrivilegeEscalation") is not False:
            problem(f"k8s: container {c['name']} must not allow privilege escalation")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes and m["name"] not in claims:
                problem(f"k8s: mount {m['name']} is neither a volume nor a claim")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            p = c.get(probe, {}).get("httpGet")
            if p is None:
                problem(f"k8s: container {c['name']} has no {probe}")
            elif isinstance(p["port"], str) and p["port"] not in ports:
                problem(f"k8s: {probe} names port {p['port']}, which the container lacks")
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        mounted = [m["mountPath"] for m in c.get("volumeMounts", [])]
        cfg = env.get("ORRERY_CONFIG")
        if cfg is None or not any(cfg.startswith(m + "/") for m in mounted):
            problem("k8s: ORRERY_CONFIG must name a file on a mounted volume")
        if config_toml is not None:
            t = tomllib.loads(config_toml)
            if port_of(t["web"]["listen"]) != ports.get("web"):
                problem("k8s: [web] listen port differs from the container's web port")
            if port_of(t["metrics"]["listen"]) != ports.get("metrics"):
                problem("k8s: [metrics] listen port differs from the container's metrics port")
            for ma in t["network"]["listen"]:
                if int(ma.split("/")[4]) not in (ports.get("p2p-tcp"), ports.get("p2p-quic")):
                    problem(f"k8s: network listen {ma} is not a container port")
        for svc in by_kind.get("Service", []):
            if svc["spec"].get("selector", {}).items() - labels.items():
                problem(f"k8s: Service {svc['metadata']['name']} selects no pod of the StatefulSet")
            for sp in svc["spec"]["ports"]:
                if isinstance(sp.get("targetPort"), str) and sp["targetPort"] not in ports:
                    problem(f"k8s: Service {svc['metadata']['name']} targets unknown port "
                            f"{sp['targetPort']}")
print("k8s: names, ports, probes and security settings cross-checked")

# ---- Compose ----------------------------------------------------------------------------------

compose = yaml.safe_load((deploy / "compose.yaml").read_text())
services = compose["services"]
if len(services) != 3:
    problem(f"compose: {len(services)} services, a three-node federation wants 3")
declared = set((compose.get("volumes") or {}).keys())
federate = (deploy / "compose/federate.sh").read_text()
for name, svc in services.items():
    build = svc.get("build", {})
    context = (deploy / build.get("context", ".")).resolve()
    if context != root:
        problem(f"compose: {name} builds from {context}, not the workspace")
    if not (context / build.get("dockerfile", "Dockerfile")).is_file():
        problem(f"compose: {name}'s dockerfile {build.get('dockerfile')} does not exist")
    mounts = {}
    for v in svc.get("volumes", []):
        src, target = v.split(":")[:2]
        mounts[target] = src
        if src.startswith("."):
            if not (deploy / src).exists():
                problem(f"compose: {name} mounts {src}, which does not exist")
        elif src not in declared:
            problem(f"compose: {name} uses volume {src}, not declared")
    cfg = svc["environment"]["ORRERY_CONFIG"]
    if cfg not in mounts:
        problem(f"compose: {name}'s ORRERY_CONFIG {cfg} is not mounted")
        continue
    t = tomllib.loads((deploy / mounts[cfg]).read_text())
    if t["node"]["name"] != name:
        problem(f"compose: {name}'s config names it {t['node']['name']}")
    web = port_of(t["web"]["listen"])
    published = [int(p.rsplit(":", 1)[1]) for p in svc.get("ports", [])]
    if published != [web]:
        problem(f"compose: {name} publishes {published}, its HTTP face listens on {web}")
    health = " ".join(svc["healthcheck"]["test"])
    if f":{web}/" not in health:
        problem(f"compose: {name}'s health check does not ask port {web}")
    script = svc["command"][0]
    if script not in mounts or not os.access(deploy / mounts[script], os.X_OK):
        problem(f"compose: {name} runs {script}, which is not a mounted executable")
    role = svc["command"][1]
    if role == "joiner" and name not in federate:
        problem(f"compose: federate.sh does not wait for joiner {name}")
    if role == "joiner" and "/dns4/node1/tcp/4100" not in t["network"]["bootstrap"]:
        problem(f"compose: joiner {name} does not bootstrap from the founder")
    if role == "founder" and "/dns4/node1/tcp/" + str(int(t["network"]["listen"][0].split("/")[4])) \
            not in federate:
        problem("compose: the founder's invitations do not name its federation port")
print(f"compose: {len(services)} services cross-checked against their configs and files")

# ---- Containerfile ----------------------------------------------------------------------------

text = (deploy / "Containerfile").read_text()
lines = re.sub(r"\\\n", " ", text).splitlines()
stages = []
args = {}
for line in lines:
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    word, _, rest = line.partition(" ")
    word = word.upper()
    if word == "ARG" and not stages:
        k, _, v = rest.partition("=")
        args[k.strip()] = v.strip()
    elif word == "FROM":
        stages.append({"from": rest, "lines": []})
    elif stages:
        stages[-1]["lines"].append((word, rest.strip()))
if len(stages) < 2:
    problem("Containerfile: not multi-stage")
workspace = tomllib.loads((root / "Cargo.toml").read_text())
copied = set()
for stage in stages:
    for word, rest in stage["lines"]:
        if word != "COPY":
            continue
        parts = [p for p in shlex.split(rest) if not p.startswith("--")]
        if "--from=" in rest:
            continue
        for src in parts[:-1]:
            copied.add(src.rstrip("/"))
            if not (root / src).exists():
                problem(f"Containerfile: COPY {src}: no such path in the workspace")
for member in workspace["workspace"]["members"]:
    if member not in copied:
        problem(f"Containerfile: workspace member {member} is not copied (cargo needs it)")
build = " ".join(rest for word, rest in stages[0]["lines"] if word == "RUN")
m = re.search(r"-p (\S+) --bin (\S+)", build)
node = tomllib.loads((root / "node/Cargo.toml").read_text())
if not m or m.group(1) != node["package"]["name"] or m.group(2) not in [b["name"] for b in node["bin"]]:
    problem("Containerfile: the build does not name the node package and its binary")
rust = re.search(r"rust:(\$\{RUST_VERSION\}|[\d.]+)", stages[0]["from"])
rust_version = args.get("RUST_VERSION") if rust and rust.group(1).startswith("$") else (
    rust.group(1) if rust else None)
want = workspace["workspace"]["package"]["rust-version"]
if rust_version is None or tuple(map(int, rust_version.split("."))) < tuple(map(int, want.split("."))):
    problem(f"Containerfile: Rust {rust_version} is older than the workspace's {want}")
final = dict()
for word, rest in stages[-1]["lines"]:
    final.setdefault(word, []).append(rest)
user = (final.get("USER") or ["root"])[-1].split(":")[0]
if user in ("root", "0"):
    problem("Containerfile: the runtime stage runs as root")
if not any("useradd" in r and user in r for r in final.get("RUN", [])):
    problem(f"Containerfile: user {user} is never created")
exposed = " ".join(final.get("EXPOSE", []))
for port in ("7480/tcp", "4100/tcp", "4100/udp", "9480/tcp"):
    if port not in exposed:
        problem(f"Containerfile: does not EXPOSE {port}")
if "127.0.0.1:7480/" not in " ".join(final.get("HEALTHCHECK", [])):
    problem("Containerfile: the health check does not ask the HTTP face on 7480")
if not any("/var/lib/orrery" in v for v in final.get("VOLUME", [])):
    problem("Containerfile: the data directory is not a volume")
env = " ".join(final.get("ENV", []))
if "ORRERY_DATA_DIR=/var/lib/orrery/" not in env:
    problem("Containerfile: ORRERY_DATA_DIR is not on the volume")
entry = [s for w, r in stages[-1]["lines"] if w == "COPY" for s in shlex.split(r) if "entrypoint" in s]
if not entry or not os.access(root / entry[0], os.X_OK):
    problem("Containerfile: the entry point script is missing or not executable")
ignore = (deploy / "Containerfile.dockerignore").read_text().split()
if "target" not in ignore:
    problem("Containerfile.dockerignore must leave target/ out of the build context")
print(f"Containerfile: {len(stages)} stages, user {user}, {len(copied)} COPY sources checked")

if problems:
    print("\n".join("FAILED: " + p for p in problems))
    sys.exit(1)
print("deploy: all checks passed")
