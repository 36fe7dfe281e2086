"""deploy/ against the code (issue 12): the Compose file, the Kubernetes manifests, the NATS
configuration and the Dockerfile are parsed (nothing is run: no Docker, no cluster) and checked
to use the settings, commands, routes and limits the code has.

A container's command is parsed with the real ``scenic-twin`` argument parser, so a flag the
deployment uses and the CLI does not have (or no longer has) fails here, not at 3 a.m."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from indicators.bus import names
from indicators.bus.jetstream import MAX_MESSAGE

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
NATS_CONF = DEPLOY / "nats" / "nats.conf"
APP_ROLES = {"run": "front", "web": "web", "worker": "worker"}
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|PRIVATE|CREDENTIAL", re.I)
NATS_MAX_PAYLOAD = 64 * 1024 * 1024          # the server refuses a larger max_payload


# ------------------------------------------------------------------ loading
def _yaml(path: Path):
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def compose() -> dict:
    return _yaml(DEPLOY / "compose.yaml")


@lru_cache(maxsize=1)
def k8s_docs() -> tuple[tuple[str, dict], ...]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                out.append((path.name, doc))
    return tuple(out)


def k8s(kind: str, name: str | None = None) -> list[dict]:
    return [d for _, d in k8s_docs() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def k8s_one(kind: str, name: str) -> dict:
    found = k8s(kind, name)
    assert len(found) == 1, f"expected one {kind} {name!r} in deploy/k8s, found {len(found)}"
    return found[0]


@lru_cache(maxsize=1)
def env_example() -> dict[str, str]:
    out = {}
    for line in (DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


@lru_cache(maxsize=1)
def cli_parser():
    from dashboard.cli import parser
    return parser()


# Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?msg}, ${VAR?msg}, $VAR, $$
_INTERP = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def interpolate(text: str, env: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        var = m.group(1) or m.group(4)
        if var in env and (env[var] != "" or not (m.group(2) or "").startswith(":")):
            return env[var]
        if m.group(2) and m.group(2).endswith("-"):
            return m.group(3)
        raise AssertionError(f"compose.yaml: ${{{var}}} has no value in .env.example and no default")
    return _INTERP.sub(one, text)


# ------------------------------------------------------------------ containers, one view
@dataclass
class Container:
    where: str                       # "compose service front", "k8s StatefulSet/engine"
    origin: str                      # compose | k8s
    image: str
    command: list[str]
    env: dict[str, object]           # name -> str (literal) or dict (k8s valueFrom)
    order: list[str] = field(default_factory=list)
    workload: dict | None = None
    service: dict | None = None      # the compose service

    @property
    def role(self) -> str | None:
        if len(self.command) >= 2 and self.command[0] == "scenic-twin":
            return APP_ROLES.get(self.command[1])
        return None

    def secret_source(self, var: str) -> str | None:
        """Where the value of env ``var`` comes from when it is a secret: 'secret:<name>/<key>'
        (Kubernetes) or 'env:<VAR>' (a Compose variable of deploy/.env)."""
        v = self.env.get(var)
        if isinstance(v, dict):
            ref = (v.get("valueFrom") or {}).get("secretKeyRef")
            return f"secret:{ref['name']}/{ref['key']}" if ref else None
        if isinstance(v, str) and self.origin == "compose":
            m = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?\?[^}]*)?\}", v)
            return f"env:{m.group(1)}" if m else None
        return None

    def resolved(self, var: str) -> str | None:
        """The value as the process sees it, with each secret as a URL-safe placeholder
        (Kubernetes: $(VAR) expansion in order; Compose: interpolation from .env.example)."""
        if var not in self.env:
            return None
        v = self.env[var]
        if isinstance(v, dict):
            src = self.secret_source(var)
            if src:
                return "SECRET-" + re.sub(r"[^A-Za-z0-9]", "-", src)
            ref = (v.get("valueFrom") or {}).get("fieldRef")
            if ref and ref.get("fieldPath") == "metadata.name":
                return "POD-NAME"
            return "VALUE-FROM"
        if self.origin == "compose":
            return interpolate(v, env_example())
        before = {n: self.resolved(n) for n in self.order[: self.order.index(var)]}
        return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: before.get(m.group(1)) or m.group(0), v)

    def resolved_command(self) -> list[str]:
        if self.origin == "compose":
            return [interpolate(a, env_example()) for a in self.command]
        vals = {n: self.resolved(n) for n in self.env}
        return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: vals.get(m.group(1)) or m.group(0), a)
                for a in self.command]


def _compose_env(svc: dict) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


@lru_cache(maxsize=1)
def containers() -> tuple[Container, ...]:
    out = []
    for name, svc in compose()["services"].items():
        env = _compose_env(svc)
        out.append(Container(f"compose service {name}", "compose", svc.get("image", ""),
                             [str(a) for a in svc.get("command") or []], env, list(env), service=svc))
    for _, doc in k8s_docs():
        if doc["kind"] not in ("StatefulSet", "Deployment", "DaemonSet", "Job", "CronJob"):
            continue
        for c in doc["spec"]["template"]["spec"].get("containers", []):
            env = {}
            for e in c.get("env") or []:
                env[e["name"]] = e["value"] if "value" in e else {"valueFrom": e.get("valueFrom")}
            out.append(Container(f"k8s {doc['kind']}/{doc['metadata']['name']} container {c['name']}", "k8s",
                                 c.get("image", ""), [str(a) for a in (c.get("command") or []) + (c.get("args") or [])],
                                 env, [e["name"] for e in c.get("env") or []], workload=doc))
    return tuple(out)


def app_containers(role: str | None = None, origin: str | None = None) -> list[Container]:
    return [c for c in containers() if c.role and (role is None or c.role == role)
            and (origin is None or c.origin == origin)]


def parse_cmd(c: Container):
    """The container's command through the real CLI parser (argparse exits 2 on an unknown flag)."""
    args = c.resolved_command()[1:]
    try:
        return cli_parser().parse_args(args)
    except SystemExit as e:
        pytest.fail(f"{c.where}: `scenic-twin {' '.join(c.command[1:])}` does not parse with "
                    f"dashboard.cli.parser() (exit {e.code}): a flag the deployment uses is missing from the CLI")


def url_parts(url: str) -> dict[str, str]:
    """scheme://user:password@host:port/path, the password taken as it is (it may be a reference)."""
    scheme, sep, rest = url.partition("://")
    assert sep, f"not a URL: {url!r}"
    userinfo, at, hostpart = rest.rpartition("@")
    user, _, password = userinfo.partition(":")
    hostport, _, path = hostpart.partition("/")
    host, _, port = hostport.partition(":")
    return {"scheme": scheme, "user": user, "password": password, "host": host, "port": port,
            "path": path, "has_userinfo": bool(at)}


# ------------------------------------------------------------------ the NATS configuration
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'|[{}\[\]:=,]|[^\s{}\[\]:=,"\'#]+')


def parse_nats_conf(text: str) -> dict:
    """The subset of the NATS configuration syntax deploy/nats/nats.conf uses: maps, arrays,
    ``key: value`` / ``key = value`` / ``key { … }``, quoted and bare scalars, # comments."""
    clean = []
    for line in text.splitlines():
        out, quote = [], None
        for ch in line:                       # cut a comment that is not inside quotes
            if quote:
                quote = None if ch == quote else quote
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                break
            out.append(ch)
        clean.append("".join(out))
    toks = _TOKEN.findall("\n".join(clean))
    pos = 0

    def scalar(t: str):
        if t[0] in "\"'":
            return t[1:-1]
        if re.fullmatch(r"-?\d+", t):
            return int(t)
        return {"true": True, "false": False}.get(t, t)

    def value():
        nonlocal pos
        t = toks[pos]
        pos += 1
        if t == "{":
            return mapping("}")
        if t == "[":
            items = []
            while toks[pos] != "]":
                if toks[pos] == ",":
                    pos += 1
                    continue
                items.append(value())
            pos += 1
            return items
        return scalar(t)

    def mapping(end: str | None):
        nonlocal pos
        out = {}
        while pos < len(toks) and toks[pos] != end:
            if toks[pos] == ",":
                pos += 1
                continue
            key = scalar(toks[pos])
            pos += 1
            if toks[pos] in (":", "="):
                pos += 1
            out[key] = value()
        pos += 1
        return out
    return mapping(None)


@lru_cache(maxsize=1)
def nats_conf() -> dict:
    return parse_nats_conf(NATS_CONF.read_text(encoding="utf-8"))


def conf_vars(conf) -> set[str]:
    """The $VARIABLE references of the configuration (environment variables of the server)."""
    if isinstance(conf, dict):
        return set().union(*(conf_vars(v) for v in conf.values())) if conf else set()
    if isinstance(conf, list):
        return set().union(*(conf_vars(v) for v in conf)) if conf else set()
    return {conf[1:]} if isinstance(conf, str) and conf.startswith("$") else set()


def subject_matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


def nats_containers() -> list[Container]:
    return [c for c in containers() if c.image.split(":")[0] in ("nats", "docker.io/library/nats")]


def nats_nodes_compose() -> dict[str, set[str]]:
    """Compose NATS service -> the names it answers to on the network."""
    out = {}
    for name, svc in compose()["services"].items():
        if str(svc.get("image", "")).split(":")[0] == "nats":
            nets = svc.get("networks") or {}
            aliases = {a for n in (nets.values() if isinstance(nets, dict) else []) for a in ((n or {}).get("aliases") or [])}
            out[name] = {name} | aliases
    return out


# ================================================================== the tests
def test_every_file_parses_and_kustomization_lists_every_manifest():
    assert compose()["services"]
    for fname, doc in k8s_docs():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), f"{fname}: not a Kubernetes object"
        assert doc["metadata"].get("name"), f"{fname}: {doc['kind']} without a name"
    kust = _yaml(DEPLOY / "kustomization.yaml")
    listed = {Path(r).name for r in kust["resources"]}
    on_disk = {p.name for p in K8S.glob("*.yaml")}
    assert listed == on_disk, f"kustomization.yaml resources {sorted(listed)} != deploy/k8s {sorted(on_disk)}"
    gen = {g["name"]: g for g in kust.get("configMapGenerator", [])}
    assert "nats-config" in gen and any(f.endswith("nats/nats.conf") for f in gen["nats-config"]["files"]), \
        "the NATS ConfigMap must be made from deploy/nats/nats.conf (the file Compose mounts)"
    mounted = {v["configMap"]["name"] for d in k8s("StatefulSet", "nats")
               for v in d["spec"]["template"]["spec"]["volumes"] if "configMap" in v}
    assert mounted == {"nats-config"}
    assert parse_nats_conf(NATS_CONF.read_text(encoding="utf-8"))


def test_kustomize_renders_when_kubectl_is_here():
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl not installed: the manifests were only parsed")
    try:
        r = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"kubectl does not run here ({e})")
    assert r.returncode == 0, r.stderr[-2000:]
    rendered = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert all(d["metadata"].get("namespace") == "scenic-twin" for d in rendered if d["kind"] != "Namespace")


def test_every_setting_set_is_one_the_code_reads():
    seen = set()
    for c in containers():
        for var in c.env:
            if var.startswith("SCENIC_TWIN_"):
                assert var in names.SETTINGS, f"{c.where} sets {var}, which the code does not read " \
                                              f"(indicators/bus/names.py SETTINGS: {', '.join(names.SETTINGS)})"
                seen.add(var)
    for var in env_example():
        if var.startswith("SCENIC_TWIN_"):
            assert var in names.SETTINGS, f".env.example: {var} is not in SETTINGS"
    docker_env = re.findall(r"\b(SCENIC_TWIN_[A-Z_]+)=", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"))
    assert set(docker_env) <= set(names.SETTINGS), f"Dockerfile ENV {docker_env}"
    assert seen, "no container sets any SCENIC_TWIN_ setting"


REQUIRED = {
    # the front: the bus and the store it is told to use, its area, the ingest token it needs off
    # loopback, the host names of its screens; it creates the area's streams (replicas) and keeps
    # state in SCENIC_TWIN_VAR
    "front": ({names.ENV_BUS}, {names.ENV_AREA}, {names.ENV_STORE}, {names.ENV_INGEST_TOKEN}, {names.ENV_HOSTS},
              {names.ENV_REPLICAS}, {names.ENV_VAR}),
    "web": ({names.ENV_BUS}, {names.ENV_AREA}, {names.ENV_STORE}, {names.ENV_HOSTS}),
    "worker": ({names.ENV_BUS}, {names.ENV_AREA_GROUPS, names.ENV_AREAS}, {names.ENV_REPLICAS}),
}


@pytest.mark.parametrize("origin", ["compose", "k8s"])
def test_each_role_is_deployed_with_the_settings_it_needs(origin):
    for role, needs in REQUIRED.items():
        cs = app_containers(role, origin)
        assert cs, f"{origin}: no {role} container"
        for c in cs:
            for any_of in needs:
                assert any_of & set(c.env), f"{c.where} ({role}) lacks {' or '.join(sorted(any_of))}"


@pytest.mark.parametrize("origin", ["compose", "k8s"])
def test_commands_parse_with_the_real_cli(origin):
    cs = app_containers(origin=origin)
    assert {c.role for c in cs} == {"front", "web", "worker"}
    for c in cs:
        args = parse_cmd(c)
        if c.role == "front":
            # the URLs carry passwords: from the environment (which `run` reads), not the command line
            assert hasattr(args, "bus") and hasattr(args, "store"), "`run` lacks --bus/--store"
            assert args.bus is None and args.store is None, f"{c.where}: a password-bearing URL in the command"
            assert c.resolved(names.ENV_BUS) and c.resolved(names.ENV_STORE), f"{c.where}: no bus or store URL"
            assert args.no_simulate, f"{c.where}: a front of real feeds runs --no-simulate"
            assert args.area == c.resolved(names.ENV_AREA), f"{c.where}: --area != {names.ENV_AREA}"
            names.check_area(args.area)
            from dashboard.cli import LOOPBACK
            if args.host not in LOOPBACK:       # `run` refuses this host without a token (exit 2)
                assert names.ENV_INGEST_TOKEN in c.env
        if c.role in ("front", "web"):
            assert args.port == 8050 and args.host == "0.0.0.0", f"{c.where}: listens on {args.host}:{args.port}"
        if c.role == "worker":
            assert not args.area, f"{c.where}: areas come from {names.ENV_AREA_GROUPS}, not --area"
        if c.origin == "k8s":
            # $(VAR) in a command is expanded from the container's env only; an unknown one stays literal
            for a in c.command:
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", a):
                    assert ref in c.env, f"{c.where}: the command refers to $({ref}), which its env does not set"


def test_k8s_env_references_come_before_use():
    for c in containers():
        if c.origin != "k8s":
            continue
        for i, var in enumerate(c.order):
            v = c.env[var]
            if isinstance(v, str):
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", v):
                    assert ref in c.order[:i], f"{c.where}: {var} uses $({ref}) before (or without) defining it " \
                                               "- Kubernetes would leave it literal"


def test_areas_are_areas_of_the_platform():
    from indicators.bus.worker import known_area
    for c in app_containers():
        for var in (names.ENV_AREA, names.ENV_AREAS, names.ENV_AREA_GROUPS):
            val = c.resolved(var)
            if val is None:
                continue
            for area in re.split(r"[;,]", val):
                assert known_area(area.strip()), f"{c.where}: {var} names {area!r}, not an area of the platform"


def test_engine_statefulset_has_one_replica_per_area_group():
    sts = k8s_one("StatefulSet", "engine")
    (c,) = [c for c in app_containers("worker", "k8s") if c.workload is sts]
    groups = c.resolved(names.ENV_AREA_GROUPS)
    assert groups, "the engine StatefulSet must give the workers SCENIC_TWIN_AREA_GROUPS"
    n = len(groups.split(";"))
    assert sts["spec"]["replicas"] == n, \
        f"engine replicas {sts['spec']['replicas']} != {n} groups in {names.ENV_AREA_GROUPS}={groups!r}"
    assert names.ENV_WORKER_ORDINAL not in c.env, \
        "a StatefulSet pod's ordinal comes from its host name; a fixed SCENIC_TWIN_WORKER_ORDINAL gives all one group"
    owned = []
    for i in range(n):
        assert names.ordinal_from_hostname(f"{sts['metadata']['name']}-{i}") == i
        owned += names.areas_for_ordinal(groups, i)
    assert len(owned) == len(set(owned)), f"an area is in two groups: {groups!r}"
    with pytest.raises(ValueError):              # a pod beyond the groups would exit 2
        names.areas_for_ordinal(groups, n)
    k8s_one("Service", sts["spec"]["serviceName"])


def test_compose_engine_workers_have_one_ordinal_each():
    workers = app_containers("worker", "compose")
    groups = {c.resolved(names.ENV_AREA_GROUPS) for c in workers}
    assert len(groups) == 1, f"the engine services disagree on {names.ENV_AREA_GROUPS}: {groups}"
    (g,) = groups
    ordinals = sorted(int(c.resolved(names.ENV_WORKER_ORDINAL)) for c in workers)
    assert ordinals == list(range(len(g.split(";")))), \
        f"ordinals {ordinals} must be 0..{len(g.split(';')) - 1}, one per group of {g!r}"
    for c in workers:
        assert int((c.service.get("deploy") or {}).get("replicas", 1)) == 1, f"{c.where}: one worker per ordinal"
        assert (c.service.get("healthcheck") or {}).get("disable"), \
            f"{c.where}: a worker has no HTTP port; the image's health check would mark it unhealthy"


def test_front_is_one_replica_per_area_and_every_web_area_has_a_front():
    for origin in ("compose", "k8s"):
        fronts = app_containers("front", origin)
        areas = [c.resolved(names.ENV_AREA) for c in fronts]
        assert len(areas) == len(set(areas)), f"{origin}: two fronts for one area {areas}"
        for c in fronts:
            n = c.workload["spec"].get("replicas", 1) if c.workload else (c.service.get("deploy") or {}).get("replicas", 1)
            assert n == 1, f"{c.where}: the front is its area's one writer: 1 replica, not {n}"
            if c.workload:
                assert c.workload["kind"] == "StatefulSet", "a Deployment may run two fronts during a roll-out"
        for w in app_containers("web", origin):
            assert w.resolved(names.ENV_AREA) in areas, f"{w.where}: no front serves its area"


def test_stream_replicas_are_three_and_match_the_nats_cluster():
    vals = {c.where: c.resolved(names.ENV_REPLICAS) for c in app_containers() if names.ENV_REPLICAS in c.env}
    assert vals and set(vals.values()) == {"3"}, vals
    conf = nats_conf()
    assert len(conf["cluster"]["routes"]) == 3
    assert k8s_one("StatefulSet", "nats")["spec"]["replicas"] == 3
    assert len(nats_nodes_compose()) == 3
    assert conf["mqtt"].get("stream_replicas", 3) == 3


def test_nats_configuration():
    conf = nats_conf()
    assert "server_name" in conf, "JetStream in a cluster and MQTT need server_name"
    assert isinstance(conf.get("jetstream"), dict) and conf["jetstream"].get("store_dir"), "JetStream with a store_dir"
    assert conf["mqtt"]["port"] == 1883, "the MQTT listener the gateways publish to"
    assert isinstance(conf["max_payload"], int) and MAX_MESSAGE <= conf["max_payload"] <= NATS_MAX_PAYLOAD, \
        f"max_payload {conf['max_payload']} must hold jetstream.MAX_MESSAGE ({MAX_MESSAGE})"
    cl = conf["cluster"]
    routes = [url_parts(r) for r in cl["routes"]]
    assert {(r["host"], r["port"]) for r in routes} == {(f"nats-{i}.nats", str(cl["port"])) for i in range(3)}
    assert cl.get("no_advertise") is True, \
        "clients must not be handed addresses without credentials (nats-py reuses none for discovered servers)"
    # the users: the platform's and the gateways'; passwords are environment references
    users = {u["user"]: u for u in conf["authorization"]["users"]}
    for u in users.values():
        assert str(u["password"]).startswith("$"), f"nats.conf: the password of {u['user']} is written in the file"
    gw = users["gateway"]["permissions"]
    allow = gw["publish"]["allow"]
    assert any(subject_matches(p, names.raw_subject(names.HOME_AREA, "crowd")) for p in allow)
    for forbidden in (names.feed_subject(names.HOME_AREA, "crowd"), names.values_subject(names.HOME_AREA),
                      names.dead_subject(names.HOME_AREA), "$JS.API.STREAM.CREATE.X"):
        assert not any(subject_matches(p, forbidden) for p in allow), f"gateways may publish {forbidden}"
    # JetStream's store is on the volume
    store = conf["jetstream"]["store_dir"]
    sts = k8s_one("StatefulSet", "nats")
    (c,) = sts["spec"]["template"]["spec"]["containers"]
    claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
    assert any(store.startswith(m["mountPath"]) and m["name"] in claims for m in c["volumeMounts"]), \
        f"k8s: {store} is not on a persistent volume"
    for name in nats_nodes_compose():
        vols = compose()["services"][name]["volumes"]
        assert any(store.startswith(v.split(":")[1]) and not v.startswith(".") for v in vols), \
            f"compose {name}: {store} is not on a volume"


def test_nats_nodes_get_every_variable_of_the_configuration():
    wanted = conf_vars(nats_conf())
    assert {"NATS_SERVER_NAME"} < wanted
    cs = nats_containers()
    assert len(cs) == 4, [c.where for c in cs]    # three Compose services, one StatefulSet
    for c in cs:
        assert wanted <= set(c.env), f"{c.where}: nats.conf needs {sorted(wanted - set(c.env))}"
        assert c.command[:1] == ["nats-server"] and "/etc/nats/nats.conf" in c.command
    k = [c for c in cs if c.origin == "k8s"][0]
    assert k.env["NATS_SERVER_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    compose_names = {c.where.split()[-1]: c.resolved("NATS_SERVER_NAME") for c in cs if c.origin == "compose"}
    assert all(k == v for k, v in compose_names.items()), f"server names {compose_names}"
    for node, answers in nats_nodes_compose().items():
        assert f"{node}.nats" in answers, f"compose {node} must answer to {node}.nats (the routes' and the bus URLs' name)"
    svc = k8s_one("Service", "nats")
    assert svc["spec"].get("clusterIP") == "None" and svc["spec"].get("publishNotReadyAddresses")
    assert k8s_one("StatefulSet", "nats")["spec"]["serviceName"] == "nats"


def test_nats_server_accepts_the_configuration():
    from indicators.bus.server import nats_server_binary
    try:
        binary = nats_server_binary()
    except FileNotFoundError:
        pytest.skip("nats-server not installed")
    env = {**os.environ, **{v: "test-value" for v in conf_vars(nats_conf())}}
    r = subprocess.run([binary, "-t", "-c", str(NATS_CONF)], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]


def test_bus_urls_reach_every_node_with_the_platform_users_password():
    conf = nats_conf()
    users = {u["user"]: u for u in conf["authorization"]["users"]}
    nats_by_origin = {c.origin: c for c in nats_containers()}       # one of each is enough: same env names
    for c in app_containers():
        raw = c.env[names.ENV_BUS]
        assert isinstance(raw, str)
        urls = [url_parts(u) for u in raw.split(",")]
        assert {(u["host"], u["port"]) for u in urls} == {(f"nats-{i}.nats", str(conf["port"])) for i in range(3)}, \
            f"{c.where}: {names.ENV_BUS} must list the three nodes (no_advertise: it learns no others)"
        for u in urls:
            assert u["scheme"] == "nats" and u["user"] in users, f"{c.where}: user {u['user']!r} is not in nats.conf"
            pw_var = users[u["user"]]["password"][1:]                        # nats.conf: $NATS_PASSWORD
            nats_side = nats_by_origin[c.origin].secret_source(pw_var)
            assert nats_side, f"NATS gets {pw_var} from no secret"
            m = re.fullmatch(r"\$\(([A-Za-z_]\w*)\)", u["password"]) if c.origin == "k8s" else None
            app_side = c.secret_source(m.group(1)) if m else None
            if c.origin == "compose":
                m = re.fullmatch(r"\$\{([A-Za-z_]\w*)(?::?\?[^}]*)?\}", u["password"])
                app_side = f"env:{m.group(1)}" if m else None
            assert app_side == nats_side, \
                f"{c.where}: the bus password ({u['password']!r}) is not the secret NATS checks ({nats_side})"


def test_store_url_is_the_postgres_of_the_deployment():
    pg_k8s = [c for c in containers() if c.origin == "k8s" and c.image.startswith("postgres:")]
    pg_compose = [c for c in containers() if c.origin == "compose" and c.image.startswith("postgres:")]
    assert len(pg_k8s) == len(pg_compose) == 1
    for pg in pg_k8s + pg_compose:
        assert pg.image == "postgres:15", f"{pg.where}: {pg.image}"
        assert pg.secret_source("POSTGRES_PASSWORD"), f"{pg.where}: the password must come from a secret"
    for c in app_containers():
        if names.ENV_STORE not in c.env:
            continue
        pg = (pg_k8s if c.origin == "k8s" else pg_compose)[0]
        u = url_parts(c.env[names.ENV_STORE])
        assert u["scheme"] == "postgresql" and u["host"] == "postgres" and u["port"] == "5432"
        assert u["user"] == pg.resolved("POSTGRES_USER") and u["path"] == pg.resolved("POSTGRES_DB")
        if c.origin == "k8s":
            m = re.fullmatch(r"\$\(([A-Za-z_]\w*)\)", u["password"])
            app_side = c.secret_source(m.group(1)) if m else None
        else:
            m = re.fullmatch(r"\$\{([A-Za-z_]\w*)(?::?\?[^}]*)?\}", u["password"])
            app_side = f"env:{m.group(1)}" if m else None
        assert app_side == pg.secret_source("POSTGRES_PASSWORD"), f"{c.where}: not PostgreSQL's password"
    k8s_one("Service", "postgres")
    assert "postgres" in compose()["services"]


def test_secrets_are_referenced_never_written():
    assert not k8s("Secret"), "a Secret with its values in the repository: create it with kubectl (README)"
    example = env_example()
    for var, val in example.items():
        if SECRET_NAME.search(var):
            assert "change-me" in val, f".env.example: {var} must be an obvious placeholder, not a secret"
    placeholders = {v for k, v in example.items() if SECRET_NAME.search(k)}
    for c in containers():
        for var, v in c.env.items():
            if SECRET_NAME.search(var):
                assert c.secret_source(var), f"{c.where}: {var} is written in the file, not taken from a secret"
            if isinstance(v, str):
                for part in re.split(r",", v):
                    if "://" in part:
                        u = url_parts(part)
                        if u["password"]:
                            ok = (re.fullmatch(r"\$\(([A-Za-z_]\w*)\)", u["password"]) if c.origin == "k8s"
                                  else re.fullmatch(r"\$\{[A-Za-z_]\w*(?::?\?[^}]*)?\}", u["password"]))
                            assert ok, f"{c.where}: {var} has a password written in the URL"
                            if c.origin == "k8s":
                                assert c.secret_source(ok.group(1)), f"{c.where}: {var}'s password is no secret"
        for a in c.command:
            for part in a.split(","):
                if "://" in part and url_parts(part)["password"]:
                    pw = url_parts(part)["password"]
                    assert re.fullmatch(r"\$\{[A-Za-z_]\w*(?::?\?[^}]*)?\}", pw), f"{c.where}: a password in the command"
    # the example's placeholder values are nowhere else (a copied .env)
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.name not in (".env.example", ".env") and path.suffix != ".md":
            text = path.read_text(encoding="utf-8", errors="replace")
            for p in placeholders:
                assert p not in text, f"{path.relative_to(ROOT)} contains {p!r} from .env.example"
    # every Compose variable used has a value in the example or a default
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    interpolate(text, example)
    ignored = [ln.strip() for ln in (DEPLOY / ".gitignore").read_text(encoding="utf-8").splitlines()]
    assert ".env" in ignored, "deploy/.env must never be committed"


def test_secret_keys_are_the_ones_the_readme_creates():
    used = set()
    for c in containers():
        if c.origin == "k8s":
            for var in c.env:
                src = c.secret_source(var)
                if src:
                    used.add(src.removeprefix("secret:"))
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    m = re.search(r"create secret generic (\S+)", readme)
    assert m, "deploy/README.md must show the `kubectl create secret generic` command"
    command = []
    for line in readme[m.start():].splitlines():      # the command and its continuation lines
        command.append(line)
        if not line.rstrip().endswith("\\"):
            break
    created = {f"{m.group(1)}/{k}" for k in re.findall(r"--from-literal=([\w-]+)=", "\n".join(command))}
    assert used == created, f"manifests use {sorted(used)}, the README creates {sorted(created)}"


def _probes(c: dict) -> list[dict]:
    return [c[p]["httpGet"] for p in ("startupProbe", "livenessProbe", "readinessProbe") if "httpGet" in c.get(p, {})]


def test_probes_and_health_check_use_public_routes_and_an_allowed_host():
    from dashboard.auth import PUBLIC, route_role
    from dashboard.cli import LOOPBACK
    for c in app_containers(origin="k8s"):
        spec = c.workload["spec"]["template"]["spec"]
        (kc,) = [x for x in spec["containers"] if x["name"] == c.where.split()[-1]]
        probes = _probes(kc)
        if c.role == "worker":
            assert not probes and not kc.get("ports"), "a worker has no HTTP port"
            continue
        assert {"livenessProbe", "readinessProbe"} <= set(kc), f"{c.where}: liveness and readiness probes"
        ports = {p["name"]: p["containerPort"] for p in kc["ports"]}
        for p in probes:
            assert p["path"] in ("/healthz", "/readyz") and route_role(p["path"]) == PUBLIC
            assert ports.get(p["port"], p["port"]) == 8050
            hosts = {h["value"] for h in p.get("httpHeaders", []) if h["name"].lower() == "host"}
            allowed = set(LOOPBACK) | set((c.resolved(names.ENV_HOSTS) or "").split(","))
            assert hosts and hosts <= allowed, \
                f"{c.where}: a probe without an allowed Host header gets 421 (the kubelet sends the pod address)"
    docker = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    hc = re.search(r"^HEALTHCHECK .*?CMD (.*)$", docker, re.M | re.S)
    assert hc, "the Dockerfile needs a HEALTHCHECK"
    m = re.search(r"http://([^:/]+):(\d+)(/[\w/]*)", hc.group(1))
    assert m and m.group(2) == "8050" and route_role(m.group(3)) == PUBLIC and m.group(3) in ("/healthz", "/readyz")
    host = re.search(r"'Host':\s*'([^']+)'", hc.group(1))
    assert host and host.group(1) in LOOPBACK, "the health check's Host must be one the app always allows"


def test_dockerfile_builds_what_the_code_needs():
    docker = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert re.search(r"^FROM python:3\.11-slim-bookworm\s*$", docker, re.M)
    assert pyproject["project"]["requires-python"] == ">=3.11"
    # data/ is read next to the packages (REPO_ROOT): the tree is copied and installed editable
    from twin_assets.layout import REPO_ROOT, data_dir
    import twin_assets
    assert Path(twin_assets.__file__).resolve().parents[1] == REPO_ROOT and data_dir() == REPO_ROOT / "data"
    assert re.search(r"pip install -e \.", docker), "a plain `pip install .` would leave data/ behind"
    copied = {src for line in re.findall(r"^COPY (.+)$", docker, re.M) for src in line.split()[:-1]}
    for pkg in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert pkg.rstrip("*") in copied, f"the Dockerfile does not copy {pkg}"
    assert {"data", "pyproject.toml", "README.md"} <= copied
    user = re.findall(r"^USER (\S+)", docker, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root"), "the image runs as an unprivileged user"
    uid = int(user[-1].split(":")[0])
    for c in app_containers(origin="k8s"):
        sc = c.workload["spec"]["template"]["spec"]["securityContext"]
        assert sc["runAsNonRoot"] and sc["runAsUser"] == uid and sc["fsGroup"] == uid, c.where
    assert re.search(r"^EXPOSE 8050\b", docker, re.M)
    ignore = [ln.strip() for ln in (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
              if ln.strip() and not ln.startswith("#")]
    assert ignore[0] == "*", "the build context sends only what the image copies (not .venv, var/, .git)"


def test_images_are_the_project_and_the_tested_nats():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    apps = {c.image for c in app_containers()}
    assert apps == {f"scenic-twin:{version}"}, f"app images {apps} (the project is {version})"
    kust = _yaml(DEPLOY / "kustomization.yaml")
    assert any(i["name"] == "scenic-twin" and i.get("newTag") == version for i in kust.get("images", []))
    tags = {c.image for c in nats_containers()}
    assert len(tags) == 1, tags
    (tag,) = tags
    m = re.fullmatch(r"nats:(\d+)\.(\d+)(?:\.\d+)?-alpine", tag)
    assert m, f"{tag}: the official nats image, alpine variant (wget for the Compose health check)"
    from indicators.bus.server import nats_server_binary
    try:
        out = subprocess.run([nats_server_binary(), "--version"], capture_output=True, text=True, timeout=30).stdout
    except FileNotFoundError:
        pytest.skip("nats-server not installed: the image's version is not compared with the tested one")
    tested = re.search(r"v(\d+)\.(\d+)", out)
    assert tested and tested.groups() == m.groups(), \
        f"the cluster runs nats {m.group(1)}.{m.group(2)}, the tests ran nats-server {out.strip()}"


def test_entry_routes_ingest_to_the_front_and_screens_to_web_workers():
    from indicators.feeds.http import MAX_BODY
    ing = k8s_one("Ingress", "scenic-twin")
    hosts = set()
    for rule in ing["spec"]["rules"]:
        hosts.add(rule["host"])
        paths = {p["path"]: p["backend"]["service"] for p in rule["http"]["paths"]}
        assert paths["/ingest"]["name"] == "front" and paths["/"]["name"] == "web"
        for svc in paths.values():
            s = k8s_one("Service", svc["name"])
            assert svc["port"]["number"] in {p["port"] for p in s["spec"]["ports"]}
            sel = s["spec"]["selector"]
            assert any(sel.items() <= w["spec"]["template"]["metadata"]["labels"].items()
                       for w in k8s("StatefulSet") + k8s("Deployment")), f"Service {svc['name']} selects no pod"
    for c in app_containers(origin="k8s"):
        if c.role in ("front", "web"):
            assert hosts <= set(c.resolved(names.ENV_HOSTS).split(",")), \
                f"{c.where}: {names.ENV_HOSTS} lacks the Ingress host(s) {hosts} (the app answers 421)"
    size = ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(size.rstrip("m")) * 1024 * 1024 >= MAX_BODY
    nginx = (DEPLOY / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    assert int(re.search(r"client_max_body_size (\d+)m;", nginx).group(1)) * 1024 * 1024 >= MAX_BODY
    upstream = dict(re.findall(r"set \$(\w+) (\S+);", nginx))
    routes = dict(re.findall(r"location (\S+) \{ proxy_pass \$(\w+); \}", nginx))
    assert upstream[routes["/ingest"]] == "http://front:8050" and upstream[routes["/"]] == "http://web:8050"
    assert "proxy_set_header Host $http_host;" in nginx, "the app compares Host (with its port) to Origin"
    svc = compose()["services"]
    proxy_ip = svc["proxy"]["networks"]["backend"]["ipv4_address"]
    for c in app_containers("front", "compose") + app_containers("web", "compose"):
        assert c.resolved("FORWARDED_ALLOW_IPS") == proxy_ip, f"{c.where}: trust X-Forwarded-For from the proxy only"


def test_compose_app_containers_have_no_way_out():
    svc = compose()["services"]
    nets = compose()["networks"]
    for c in app_containers(origin="compose"):
        on = c.service["networks"]
        on = list(on) if isinstance(on, (list, dict)) else []
        assert on and all(nets[n].get("internal") for n in on), f"{c.where} reaches outside: {on}"
        assert not c.service.get("ports"), f"{c.where}: published directly, past the proxy"
        assert c.service.get("read_only"), f"{c.where}: the root file system should be read-only"
    assert svc["front"]["volumes"] and any(v.split(":")[1] == svc["front"]["environment"][names.ENV_VAR]
                                           for v in svc["front"]["volumes"]), "the front's state folder on a volume"


def test_pyyaml_is_a_declared_test_dependency():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]["test"]
    assert any(re.match(r"pyyaml\b", d, re.I) for d in extra)


def test_every_setting_the_code_reads_is_listed_in_one_place():
    """A variable read somewhere in the code but missing from names.SETTINGS would be invisible to
    this file's checks of the deployment (and to an operator reading the list)."""
    import re
    root = Path(__file__).resolve().parents[1]
    found = set()
    for pkg in ("indicators", "dashboard", "twin_assets"):
        for f in (root / pkg).rglob("*.py"):
            found |= set(re.findall(r"SCENIC_TWIN_[A-Z_]*[A-Z]", f.read_text(encoding="utf-8")))
    found = {v for v in found if not (v + "_").startswith(names.ENV_RATE_PREFIX)}
    assert found and found <= set(names.SETTINGS), sorted(found - set(names.SETTINGS))
