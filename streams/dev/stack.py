"""The local stack: a real Kafka broker (KRaft) and a real redis-server, no Docker.

Kafka's jars come from Maven Central through Maven (``streams/dev/kafka/pom.xml``) and run
with the machine's Java. Everything the stack writes lives under one run folder::

    <run_dir>/kafka/{data,classpath.txt,server.properties}  <run_dir>/redis/
    <run_dir>/pids/{kafka,redis}.pid                         <run_dir>/logs/{kafka,redis}.log

Only processes whose pid file we wrote *and* whose command line names our run folder are
ever signalled, so ``stack down`` never touches somebody else's Kafka or Redis.

By default the broker has one PLAINTEXT client listener. Tests of the client security
settings pass a :class:`KafkaSecurity` to add SASL/SCRAM-SHA-512 and TLS listeners next to
it (the controller and inter-broker traffic stay on PLAINTEXT); ``tokenboard stack up`` never
does. :meth:`LocalStack.stop_service` and :meth:`LocalStack.start_service` stop and restart
one service on the same data, for fault-injection tests.

``brokers=N`` (``tokenboard stack up --brokers 3``) runs a KRaft cluster of N nodes instead,
each broker and controller (the N form the controller quorum), with replication factor
``min(N, 3)`` and ``min.insync.replicas`` one less. Node ``i`` (1-based) serves clients on
``kafka_port + 2(i-1)`` and the quorum on ``kafka_controller_port + 2(i-1)`` unless ports are
given, and lives in ``<run_dir>/kafka/node-<i>/``, ``pids/kafka-<i>.pid``, ``logs/kafka-<i>.log``.
The layout is written to ``<run_dir>/kafka/cluster.json``, so ``status``, ``down`` and
``logs`` of that run folder find every node without being told. Without ``brokers`` (or with
1) a run folder without that file is the single broker, with the same files as always.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from streams.settings import Settings

READY_TIMEOUT_S = 120.0
SERVICES = ("kafka", "redis")
#: Client security protocols an extra listener may use; each becomes a listener of that name.
SECURE_PROTOCOLS = ("SASL_PLAINTEXT", "SSL", "SASL_SSL")
SCRAM_MECHANISM = "SCRAM-SHA-512"
#: Replication of a cluster's topics is capped here: more copies buy nothing on one machine.
MAX_CLUSTER_REPLICATION = 3


class StackError(RuntimeError):
    """A stack command could not do its job; the message says what to do."""


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """What ``stack status`` knows about one service."""

    name: str
    running: bool
    healthy: bool
    pid: int | None
    address: str
    version: str

    def line(self) -> str:
        """One human-readable status line."""
        state = "healthy" if self.healthy else ("starting/unhealthy" if self.running else "stopped")
        pid = f"pid {self.pid}" if self.pid else "no pid"
        return f"{self.name:<6} {state:<18} {self.address:<22} {self.version:<10} {pid}"


@dataclass(frozen=True, slots=True)
class KafkaListener:
    """An extra client listener of the local broker on ``127.0.0.1:port``.

    ``protocol`` is one of :data:`SECURE_PROTOCOLS`; SASL listeners accept SCRAM-SHA-512 only,
    TLS listeners present :attr:`KafkaSecurity.keystore_pem`.
    """

    protocol: str
    port: int

    @property
    def name(self) -> str:
        """The listener name in the broker configuration (the protocol's name)."""
        return self.protocol


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """Optional secured listeners of the local broker; the default adds none.

    ``scram_users`` are ``(name, password)`` pairs whose SCRAM-SHA-512 credentials are
    written into the cluster metadata when the storage is formatted (a run folder formatted
    without them has no such users). ``keystore_pem`` is a PEM file holding the broker's
    unencrypted PKCS#8 private key followed by its certificate chain, required by TLS listeners.
    """

    listeners: tuple[KafkaListener, ...] = ()
    scram_users: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    keystore_pem: str = ""

    def __post_init__(self) -> None:
        protocols = [listener.protocol for listener in self.listeners]
        unknown = sorted(set(protocols) - set(SECURE_PROTOCOLS))
        if unknown:
            raise StackError(f"unsupported listener protocol(s) {unknown}; use {SECURE_PROTOCOLS}")
        if len(set(protocols)) != len(protocols):
            raise StackError("at most one extra listener per protocol")
        if any("SSL" in p for p in protocols) and not self.keystore_pem:
            raise StackError("a TLS listener needs keystore_pem (private key + certificate chain)")
        for name, password in self.scram_users:
            if not name or not password or any(c in name + password for c in ",=[]"):
                raise StackError("SCRAM user names and passwords must be non-empty, without ,=[]")

    def server_properties(self) -> dict[str, str]:
        """The template fields that add these listeners (all empty without listeners)."""
        extra_listeners = "".join(f",{x.name}://127.0.0.1:{x.port}" for x in self.listeners)
        extra_protocols = "".join(f",{x.name}:{x.protocol}" for x in self.listeners)
        lines: list[str] = []
        for listener in self.listeners:
            prefix = f"listener.name.{listener.name.lower()}"
            if listener.protocol.startswith("SASL"):
                mechanism = SCRAM_MECHANISM.lower()
                lines += [
                    f"{prefix}.sasl.enabled.mechanisms={SCRAM_MECHANISM}",
                    f"{prefix}.{mechanism}.sasl.jaas.config="
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                ]
            if "SSL" in listener.protocol:
                lines += [
                    f"{prefix}.ssl.keystore.type=PEM",
                    f"{prefix}.ssl.keystore.location={self.keystore_pem}",
                    f"{prefix}.ssl.client.auth=none",
                ]
        config = "".join(line + "\n" for line in lines)
        return {
            "extra_listeners": extra_listeners,
            "extra_protocols": extra_protocols,
            "extra_config": config,
        }

    def format_arguments(self) -> list[str]:
        """``StorageTool format`` arguments creating the SCRAM users."""
        arguments: list[str] = []
        for name, password in self.scram_users:
            arguments += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        return arguments


@dataclass(frozen=True, slots=True)
class KafkaNode:
    """One node (broker and controller) of a local multi-broker cluster."""

    node_id: int
    port: int
    controller_port: int

    @property
    def service(self) -> str:
        """Its service name for :meth:`LocalStack.stop_service` and friends: ``kafka-<id>``."""
        return f"kafka-{self.node_id}"

    @property
    def address(self) -> str:
        """Its client listener, ``127.0.0.1:port``."""
        return f"127.0.0.1:{self.port}"


def cluster_replication(brokers: int) -> tuple[int, int]:
    """(replication factor, ``min.insync.replicas``) of a cluster of ``brokers`` nodes."""
    replication = min(brokers, MAX_CLUSTER_REPLICATION)
    return replication, max(1, replication - 1)


class LocalStack:
    """Start, stop and inspect the local Kafka + Redis of one run folder."""

    def __init__(
        self,
        settings: Settings,
        log: Callable[[str], None] = print,
        *,
        security: KafkaSecurity | None = None,
        brokers: int | None = None,
        broker_ports: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        """``brokers``: None keeps what the run folder holds (one broker when it holds
        nothing); ``broker_ports``: (client, controller) port of each node, default derived
        from the settings' two Kafka ports."""
        self.settings = settings
        self.root = settings.run_path
        self.log = log
        self.security = security or KafkaSecurity()
        self._cluster_id = ""
        #: The cluster's nodes; empty for the single broker, which keeps its old layout.
        self.nodes: tuple[KafkaNode, ...] = self._resolve_nodes(brokers, broker_ports)
        if self.nodes and self.security.listeners:
            raise StackError("secured listeners are only supported with a single broker")

    def _resolve_nodes(
        self, brokers: int | None, ports: Sequence[tuple[int, int]] | None
    ) -> tuple[KafkaNode, ...]:
        recorded = self._read_layout()
        if brokers is None:
            return recorded
        if brokers < 1:
            raise StackError(f"--brokers must be at least 1, not {brokers}")
        # A run folder's data belongs to the cluster that formatted it: changing the number of
        # nodes on it would start brokers that cannot form a quorum or miss replicas.
        has_single_data = (self._path("kafka", "data", "meta.properties")).exists()
        if recorded and len(recorded) != brokers:
            raise StackError(
                f"{self.root} holds a {len(recorded)}-broker cluster; use --brokers "
                f"{len(recorded)}, or `tokenboard stack reset` first"
            )
        if brokers == 1:
            return ()
        if has_single_data:
            raise StackError(
                f"{self.root} holds a single broker's data; `tokenboard stack reset` first "
                f"or choose another run folder (TOKENBOARD_RUN_DIR)"
            )
        if recorded:
            return recorded
        s = self.settings
        if ports is None:
            ports = [
                (s.kafka_port + 2 * i, s.kafka_controller_port + 2 * i) for i in range(brokers)
            ]
        if len(ports) != brokers:
            raise StackError(f"{brokers} brokers need {brokers} port pairs, got {len(ports)}")
        flat = [port for pair in ports for port in pair]
        if len(set(flat)) != len(flat):
            raise StackError(
                f"the cluster's ports collide ({flat}): set TOKENBOARD_KAFKA_PORT and "
                f"TOKENBOARD_KAFKA_CONTROLLER_PORT at least {2 * brokers} apart"
            )
        return tuple(KafkaNode(i + 1, port, cport) for i, (port, cport) in enumerate(ports))

    def _layout_file(self) -> Path:
        return self._path("kafka", "cluster.json")

    def _read_layout(self) -> tuple[KafkaNode, ...]:
        try:
            layout = json.loads(self._layout_file().read_text())
        except (FileNotFoundError, ValueError):
            return ()
        self._cluster_id = str(layout.get("cluster_id", ""))
        return tuple(KafkaNode(int(n), int(p), int(c)) for n, p, c in layout["nodes"])

    def _write_layout(self) -> None:
        if not self._cluster_id:
            self._cluster_id = uuid.uuid4().hex[:22]
        nodes = [[n.node_id, n.port, n.controller_port] for n in self.nodes]
        self._layout_file().write_text(
            json.dumps({"cluster_id": self._cluster_id, "nodes": nodes}, indent=1) + "\n"
        )

    # The cluster ------------------------------------------------------------------------
    @property
    def kafka_services(self) -> tuple[str, ...]:
        """The Kafka service names: ``("kafka",)``, or ``kafka-1`` .. ``kafka-N``."""
        return tuple(n.service for n in self.nodes) or ("kafka",)

    @property
    def bootstrap(self) -> str:
        """Every broker's client address, comma separated (TOKENBOARD_KAFKA_BOOTSTRAP)."""
        if not self.nodes:
            return f"127.0.0.1:{self.settings.kafka_port}"
        return ",".join(n.address for n in self.nodes)

    @property
    def replication(self) -> int:
        """The replication factor the stack's topics should have (TOKENBOARD_REPLICATION)."""
        return cluster_replication(len(self.nodes))[0] if self.nodes else 1

    def node(self, service: str) -> KafkaNode:
        """The node of a ``kafka-<id>`` service name."""
        for node in self.nodes:
            if node.service == service:
                return node
        raise StackError(
            f"unknown broker {service!r}: choose one of {', '.join(self.kafka_services)}"
        )

    def node_by_id(self, node_id: int) -> KafkaNode:
        """The node with Kafka node id ``node_id``."""
        return self.node(f"kafka-{node_id}")

    def pid(self, name: str) -> int | None:
        """The pid of a running service of this run folder (``kafka-<id>`` for a node)."""
        self._check(name)
        return self._running_pid(name)

    def kill_service(self, name: str) -> int | None:
        """SIGKILL one service (a crash: nothing is flushed); returns the pid it had.

        Its data stays; :meth:`start_service` brings it back.
        """
        pid = self.pid(name)
        if pid is not None:
            self.log(f"killing {name} (pid {pid})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self._pid_file(name).unlink(missing_ok=True)
        return pid

    def active_controller(self) -> int | None:
        """Node id of the KRaft quorum's leader, the active controller (None: not known).

        Clients are never told (brokers answer a random node as "controller"), and aiokafka
        has no DescribeQuorum; every voter records the leader of each epoch it sees in its
        ``quorum-state`` file, so the live node with the newest epoch knows.
        """
        best: tuple[int, int] | None = None
        for node in self.nodes:
            if self._running_pid(node.service) is None:
                continue
            path = self._node_dir(node, "data", "__cluster_metadata-0", "quorum-state")
            with contextlib.suppress(OSError, ValueError, KeyError):
                state = json.loads(path.read_text())
                epoch, leader = int(state["leaderEpoch"]), int(state["leaderId"])
                if leader >= 0 and (best is None or epoch > best[0]):
                    best = (epoch, leader)
        return None if best is None else best[1]

    def _node_dir(self, node: KafkaNode, *parts: str) -> Path:
        return self._path("kafka", f"node-{node.node_id}", *parts)

    def _check(self, name: str) -> None:
        if name in ("kafka", "redis") or (self.nodes and name in self.kafka_services):
            return
        choices = ", ".join(("kafka", *(n.service for n in self.nodes), "redis"))
        raise StackError(f"unknown service {name!r}: choose one of {choices}")

    def _expand(self, name: str) -> tuple[str, ...]:
        """A service name as the processes it stands for (``kafka``: every node)."""
        self._check(name)
        return self.kafka_services if name == "kafka" else (name,)

    # Paths --------------------------------------------------------------------------
    def _path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def _pid_file(self, name: str) -> Path:
        return self._path("pids", f"{name}.pid")

    def log_file(self, name: str) -> Path:
        """Where a service's output goes (a node of a cluster: ``kafka-<id>``)."""
        return self._path("logs", f"{name}.log")

    def log_files(self, name: str) -> list[tuple[str, Path]]:
        """(service, log file) of a service name; ``kafka`` of a cluster gives every node."""
        return [(service, self.log_file(service)) for service in self._expand(name)]

    # Public commands ----------------------------------------------------------------
    def up(self) -> list[ServiceStatus]:
        """Start whatever is not running yet and wait until every service answers."""
        self._make_dirs()
        if self.nodes:
            self._write_layout()
        if self._running_pid("redis") is None:
            self._start_redis()
        # Every node is spawned before any is waited for: a node answers once a quorum of
        # controllers runs, which needs the others.
        for service in self.kafka_services:
            if self._running_pid(service) is None:
                self._start_kafka(service)
        self._wait_ready(("redis", *self.kafka_services))
        return self.status()

    def down(self) -> None:
        """Stop the services this run folder started; leave everything else alone."""
        self.stop_service("kafka")
        self.stop_service("redis")

    def start_service(self, name: str) -> None:
        """Start one service (``kafka``, a node ``kafka-<id>``, or ``redis``) on its existing
        data; wait until ready.

        A no-op when it already runs. With :meth:`stop_service` this restarts a broker or a
        Redis under running clients, which is what the fault-injection tests do. A node of a
        cluster is ready once the cluster lists it among its brokers again.
        """
        services = self._expand(name)
        self._make_dirs()
        for service in services:
            if self._running_pid(service) is None:
                if service == "redis":
                    self._start_redis()
                else:
                    self._start_kafka(service)
        self._wait_ready(services)

    def stop_service(self, name: str, *, timeout_s: float = 30.0) -> None:
        """Stop one service this run folder started (SIGTERM, SIGKILL after ``timeout_s``).

        Its data stays; :meth:`start_service` brings it back on the same data. ``kafka`` of
        a cluster signals every node at once: a node stopped alone last would wait for a
        quorum that is gone.
        """
        running: list[tuple[str, int]] = []
        for service in self._expand(name):
            pid = self._running_pid(service)
            if pid is None:
                self._pid_file(service).unlink(missing_ok=True)
            else:
                self.log(f"stopping {service} (pid {pid})")
                running.append((service, pid))
        _terminate_all([pid for _, pid in running], timeout_s=timeout_s)
        for service, _ in running:
            self._pid_file(service).unlink(missing_ok=True)

    def data_dir(self, name: str) -> Path:
        """Where a service keeps its data (Redis: the append-only files; Kafka: the logs)."""
        self._check(name)
        if name == "redis":
            return self._path("redis")
        if name == "kafka":
            if self.nodes:
                raise StackError("a cluster keeps data per node: ask for kafka-<id>")
            return self._path("kafka", "data")
        return self._node_dir(self.node(name), "data")

    def reset(self) -> None:
        """Stop the services and delete all their data and logs."""
        self.down()
        for sub in ("kafka", "redis", "logs", "pids"):
            shutil.rmtree(self._path(sub), ignore_errors=True)
        self.log(f"removed {self.root}")

    def status(self) -> list[ServiceStatus]:
        """Health and version of Kafka (each node of a cluster) and Redis."""
        s = self.settings
        redis_pid = self._running_pid("redis")
        redis_version = _redis_version(s.redis_port)
        if self.nodes:
            brokers: list[ServiceStatus] = []
            for node in self.nodes:
                ok = _broker_ids(node.port) is not None
                brokers.append(
                    ServiceStatus(
                        node.service,
                        self._running_pid(node.service) is not None,
                        ok,
                        self._running_pid(node.service),
                        node.address,
                        s.kafka_version if ok else "-",
                    )
                )
            redis = ServiceStatus(
                "redis",
                redis_pid is not None,
                redis_version is not None,
                redis_pid,
                f"127.0.0.1:{s.redis_port}",
                redis_version or "-",
            )
            return [*brokers, redis]
        kafka_pid = self._running_pid("kafka")
        kafka_ok = _kafka_answers(s)
        return [
            ServiceStatus(
                "kafka",
                kafka_pid is not None,
                kafka_ok,
                kafka_pid,
                f"127.0.0.1:{s.kafka_port}",
                s.kafka_version if kafka_ok else "-",
            ),
            ServiceStatus(
                "redis",
                redis_pid is not None,
                redis_version is not None,
                redis_pid,
                f"127.0.0.1:{s.redis_port}",
                redis_version or "-",
            ),
        ]

    def tail_logs(self, name: str, lines: int = 40) -> str:
        """The last lines of a service's log (``kafka`` of a cluster: of every node's)."""
        if self.nodes and name == "kafka":
            return "\n".join(
                f"==> {service} <==\n{self.tail_logs(service, lines)}"
                for service in self.kafka_services
            )
        path = self.log_file(name)
        if not path.exists():
            return f"(no log at {path})"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _make_dirs(self) -> None:
        for sub in ("pids", "logs", "kafka", "redis"):
            self._path(sub).mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            self._node_dir(node, "data").mkdir(parents=True, exist_ok=True)

    # Redis ----------------------------------------------------------------------------
    def _start_redis(self) -> None:
        binary = _redis_binary()
        port = self.settings.redis_port
        _require_free_port(port, "Redis", "TOKENBOARD_REDIS_PORT")
        data_dir = self._path("redis")
        cmd = [
            binary,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(data_dir),
            "--appendonly", "yes",
            "--save", "60 1000",
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip
        self.log(f"starting redis-server on 127.0.0.1:{port} (data in {data_dir})")
        self._spawn("redis", cmd)

    # Kafka ----------------------------------------------------------------------------
    def _start_kafka(self, service: str = "kafka") -> None:
        if service != "kafka":
            self._start_node(self.node(service))
            return
        java = _require_tool("java", "Java 17+ (Debian: apt-get install openjdk-17-jre-headless)")
        s = self.settings
        _require_free_port(s.kafka_port, "Kafka", "TOKENBOARD_KAFKA_PORT")
        _require_free_port(
            s.kafka_controller_port, "Kafka controller", "TOKENBOARD_KAFKA_CONTROLLER_PORT"
        )
        for listener in self.security.listeners:
            _require_free_port(listener.port, f"Kafka {listener.protocol}", "the listener port")
        classpath = self._kafka_classpath()
        config = self._write_kafka_config()
        log4j = _package_file("log4j.properties")
        base = [java, f"-Xmx{s.kafka_heap}", f"-Xms{s.kafka_heap}", "-cp", classpath,
                f"-Dlog4j.configuration=file:{log4j}", "-Djava.awt.headless=true"]  # fmt: skip
        data_dir = self._path("kafka", "data")
        if not (data_dir / "meta.properties").exists():
            cluster_id = uuid.uuid4().hex[:22]
            self.log("formatting Kafka storage (KRaft)")
            fmt = ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)]
            done = subprocess.run(
                [*base, *fmt, *self.security.format_arguments()],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise StackError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")
        self.log(f"starting Kafka {s.kafka_version} (KRaft) on 127.0.0.1:{s.kafka_port}")
        # The run folder in a -D flag marks the command line as ours for _running_pid.
        self._spawn("kafka", [*base, f"-Dtokenboard.run={self.root}", "kafka.Kafka", str(config)])

    def _start_node(self, node: KafkaNode) -> None:
        """Format (first start only) and start one node of the cluster."""
        java = _require_tool("java", "Java 17+ (Debian: apt-get install openjdk-17-jre-headless)")
        s = self.settings
        _require_free_port(node.port, f"Kafka node {node.node_id}", "TOKENBOARD_KAFKA_PORT")
        _require_free_port(
            node.controller_port,
            f"Kafka controller {node.node_id}",
            "TOKENBOARD_KAFKA_CONTROLLER_PORT",
        )
        if not self._cluster_id:
            self._write_layout()
        classpath = self._kafka_classpath()
        config = self._write_node_config(node)
        log4j = _package_file("log4j.properties")
        base = [java, f"-Xmx{s.kafka_heap}", f"-Xms{s.kafka_heap}", "-cp", classpath,
                f"-Dlog4j.configuration=file:{log4j}", "-Djava.awt.headless=true"]  # fmt: skip
        if not self._node_dir(node, "data", "meta.properties").exists():
            self.log(f"formatting Kafka storage of node {node.node_id} (KRaft)")
            fmt = ["kafka.tools.StorageTool", "format", "-t", self._cluster_id, "-c", str(config)]
            done = subprocess.run([*base, *fmt], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise StackError(
                    f"formatting Kafka storage of node {node.node_id} failed:\n"
                    f"{done.stdout}{done.stderr}"
                )
        self.log(f"starting Kafka {s.kafka_version} node {node.node_id} on {node.address}")
        marks = [f"-Dtokenboard.run={self.root}", f"-Dtokenboard.node={node.node_id}"]
        self._spawn(node.service, [*base, *marks, "kafka.Kafka", str(config)])

    def _write_node_config(self, node: KafkaNode) -> Path:
        replication, min_isr = cluster_replication(len(self.nodes))
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        text = (
            _package_file("server-cluster.properties.template")
            .read_text()
            .format(
                node_id=node.node_id,
                voters=voters,
                port=node.port,
                controller_port=node.controller_port,
                data_dir=self._node_dir(node, "data"),
                partitions=self.settings.partitions,
                replication=replication,
                min_isr=min_isr,
            )
        )
        path = self._node_dir(node, "server.properties")
        path.write_text(text)
        return path

    def _kafka_classpath(self) -> str:
        version = self.settings.kafka_version
        cp_file = self._path("kafka", f"classpath-{version}.txt")
        if cp_file.exists():
            cached = cp_file.read_text().strip()
            if cached and all(Path(j).exists() for j in cached.split(os.pathsep)):
                return cached
        mvn = _require_tool("mvn", "Apache Maven (Debian: apt-get install maven)")
        self.log(f"resolving Kafka {version} jars from Maven Central (first run only)...")
        done = subprocess.run(
            [mvn, "-q", "-B", "-f", str(_package_file("pom.xml")),
             f"-Dkafka.version={version}", "dependency:build-classpath",
             f"-Dmdep.outputFile={cp_file}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0 or not cp_file.exists():
            raise StackError(
                f"Maven could not resolve org.apache.kafka:kafka_2.13:{version}:\n"
                f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
        return cp_file.read_text().strip()

    def _write_kafka_config(self) -> Path:
        s = self.settings
        template = _package_file("server.properties.template").read_text()
        text = template.format(
            port=s.kafka_port,
            controller_port=s.kafka_controller_port,
            data_dir=self._path("kafka", "data"),
            partitions=s.partitions,
            **self.security.server_properties(),
        )
        path = self._path("kafka", "server.properties")
        path.write_text(text)
        return path

    # Processes ------------------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str]) -> None:
        log_path = self.log_file(name)
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.root,
            )  # fmt: skip
        self._pid_file(name).write_text(str(proc.pid))

    def _running_pid(self, name: str) -> int | None:
        try:
            pid = int(self._pid_file(name).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        marker = str(self.root)
        if name.startswith("kafka-"):
            node_mark = f"-Dtokenboard.node={name.removeprefix('kafka-')}"
            ours = marker in cmdline and node_mark in cmdline.split()
        else:
            ours = marker in cmdline if name == "kafka" else "redis-server" in cmdline
        if name == "redis" and ours:
            # redis-server rewrites its title; check its working directory instead.
            with contextlib.suppress(OSError):
                ours = Path(os.readlink(f"/proc/{pid}/cwd")) == self._path("redis")
        return pid if ours else None

    def _exited(self, name: str) -> bool:
        """True when the process of our pid file is gone.

        Not :meth:`_running_pid`: right after the spawn, /proc/<pid>/cmdline can read empty
        while the JVM execs, which made a healthy broker look like it had exited.
        """
        if self._running_pid(name) is not None:
            return False
        try:
            pid = int(self._pid_file(name).read_text().strip())
        except (FileNotFoundError, ValueError):
            return True
        return not _alive(pid)

    def _wait_ready(self, names: tuple[str, ...]) -> None:
        s = self.settings
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = set(names)
        last_note = 0.0
        everyone = {n.node_id for n in self.nodes}
        while waiting and time.monotonic() < deadline:
            if "redis" in waiting and _redis_version(s.redis_port) is not None:
                waiting.discard("redis")
                self.log(f"redis ready on 127.0.0.1:{s.redis_port}")
            if "kafka" in waiting and _kafka_answers(s):
                waiting.discard("kafka")
                self.log(f"kafka ready on 127.0.0.1:{s.kafka_port}")
            for node in self.nodes:
                # A node is ready when it answers and the cluster it sees has every node.
                if node.service in waiting and _broker_ids(node.port) == everyone:
                    waiting.discard(node.service)
                    self.log(f"{node.service} ready on {node.address}")
            for name in list(waiting):
                if self._exited(name):
                    raise StackError(
                        f"{name} exited during start-up; last log lines "
                        f"({self.log_file(name)}):\n{self.tail_logs(name, 30)}"
                    )
            if waiting and time.monotonic() - last_note > 5:
                self.log(f"waiting for {', '.join(sorted(waiting))}...")
                last_note = time.monotonic()
            time.sleep(0.3)
        if waiting:
            pending = ", ".join(sorted(waiting))
            raise StackError(
                f"{pending} did not become ready within {READY_TIMEOUT_S:.0f} s; "
                f"see `tokenboard stack logs` ({self.root / 'logs'})"
            )


# Helpers ----------------------------------------------------------------------------------
def _package_file(name: str) -> Path:
    return Path(str(resources.files("streams.dev") / "kafka" / name))


def _require_tool(name: str, install_hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise StackError(f"`{name}` not found on PATH: install {install_hint}")
    return path


def _redis_binary() -> str:
    path = shutil.which("redis-server")
    if path is not None:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("redis-server missing: installing the Debian package redis-server", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=False, env=env)
        # The package starts a system-wide server on 6379; it is not ours, stop it.
        subprocess.run(["service", "redis-server", "stop"], check=False, capture_output=True)
        path = shutil.which("redis-server")
        if path is not None:
            return path
    raise StackError("`redis-server` not found: install it (Debian: apt-get install redis-server)")


def _require_free_port(port: int, what: str, variable: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise StackError(
                f"port {port} for {what} is taken by another process; stop it or choose "
                f"another port with {variable}"
            ) from exc


def _terminate(pid: int, timeout_s: float) -> None:
    _terminate_all([pid], timeout_s)


def _terminate_all(pids: list[int], timeout_s: float) -> None:
    """SIGTERM every pid at once, SIGKILL the ones still alive after ``timeout_s``."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return
        time.sleep(0.2)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        while _alive(pid):
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        # Zombie children of this process count as gone.
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.split(") ", 1)[1].startswith("Z"):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True


def _redis_version(port: int) -> str | None:
    """``INFO server`` over a raw socket: cheap, and works before the client library loads."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"INFO server\r\n")
            data = b""
            while b"redis_version:" not in data or b"\r\n" not in data.split(b"redis_version:")[1]:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("redis_version:"):
            return line.split(":", 1)[1].strip()
    return None


def _broker_ids(port: int) -> set[int] | None:
    """The node ids of the brokers the broker on ``port`` lists (None: it does not answer)."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> set[int] | None:
        client = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=3000)
        try:
            await asyncio.wait_for(client.start(), 5)
            cluster = await asyncio.wait_for(client.describe_cluster(), 5)
            return {int(b["node_id"]) for b in cluster["brokers"]}
        except Exception:
            return None
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    with socket.socket() as sock:
        sock.settimeout(0.5)
        if sock.connect_ex(("127.0.0.1", port)) != 0:
            return None
    return asyncio.run(probe())


def _kafka_answers(settings: Settings) -> bool:
    """True when the broker answers a metadata request on its listener."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        client = AIOKafkaAdminClient(
            bootstrap_servers=f"127.0.0.1:{settings.kafka_port}", request_timeout_ms=3000
        )
        try:
            await asyncio.wait_for(client.start(), 5)
            await asyncio.wait_for(client.describe_cluster(), 5)
            return True
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await client.close()

    with socket.socket() as sock:
        sock.settimeout(0.5)
        if sock.connect_ex(("127.0.0.1", settings.kafka_port)) != 0:
            return False
    return asyncio.run(probe())
