"""Helpers for the tests that run against the Redis and PostgreSQL servers.

The fixtures built on them are in ``servers.py`` (a pytest plugin). The servers are the
machine's (``127.0.0.1:6379`` and ``postgresql+psycopg://postgres@127.0.0.1:5432/test``
unless ``MFA_TEST_REDIS_URL`` / ``MFA_TEST_POSTGRES_URL`` say otherwise). When one is not
reachable the tests that need it are skipped with the reason - unless the ``CI``
environment variable is set: then they fail, so that CI can never pass by skipping them.

Isolation from other tests using the same servers at the same time: every Redis store gets
a unique key prefix (only keys under it are deleted afterwards), every PostgreSQL test a
unique schema (dropped afterwards). The shared servers are never stopped or reconfigured;
tests that need a server to die use a private ``redis-server`` (:class:`PrivateRedis`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, NoReturn

import pytest

REDIS_URL = os.environ.get("MFA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "MFA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("MFA_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def unavailable(reason: str) -> NoReturn:
    """Skip the test for ``reason`` - or fail it when the ``CI`` variable is set."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: a missing server is a failure, not a skip)")
    pytest.skip(f"{reason} (set CI=1 to make this a failure)")


def unique(stem: str) -> str:
    """A name no other test run uses: ``stem`` plus 12 random hex digits."""
    return f"{stem}{uuid.uuid4().hex[:12]}"


# -- Redis ---------------------------------------------------------------------------------


def redis_client(url: str = REDIS_URL, **options: Any) -> Any:
    """A redis-py client for ``url`` with short timeouts."""
    import redis

    options.setdefault("socket_timeout", 5.0)
    options.setdefault("socket_connect_timeout", 5.0)
    return redis.Redis.from_url(url, **options)


def delete_prefix(client: Any, prefix: str) -> None:
    """Delete every key under ``prefix`` (and nothing else)."""
    pattern = prefix.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
    pattern = pattern.replace("[", "\\[") + "*"
    batch = list(client.scan_iter(match=pattern, count=500))
    while batch:
        client.delete(*batch[:500])
        batch = batch[500:]


class PrivateRedis:
    """A ``redis-server`` of this test alone, on a free port, that a test may kill and
    restart (append-only file with ``appendfsync always``, so acknowledged writes survive
    a kill)."""

    def __init__(self, directory: Path, *extra_args: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed, so no private server can be started")
        self.binary: str = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.extra_args = extra_args

    def start(self) -> None:
        """Start the server and wait until it answers PING."""
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis_client(self.url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.ping()
                    return
                except Exception:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def signal(self, signum: int) -> None:
        """Send ``signum`` (SIGSTOP: freeze, SIGCONT: thaw) to this server's PID."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def kill(self) -> None:
        """SIGKILL the server (a crash, no shutdown handshake) and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


def free_port() -> int:
    """A loopback TCP port nothing listens on now (its probe socket is closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# -- PostgreSQL ----------------------------------------------------------------------------


def postgres_engine(url: str, schema: str, **options: Any) -> Any:
    """An engine whose tables live in ``schema`` (SQLAlchemy's schema_translate_map)."""
    import sqlalchemy as sa

    connect_args = dict(options.pop("connect_args", {}))
    connect_args.setdefault("connect_timeout", 5)
    engine = sa.create_engine(url, connect_args=connect_args, **options)
    return engine.execution_options(schema_translate_map={None: schema})


def create_postgres_schema(url: str, schema: str) -> None:
    """Create the empty schema ``schema`` and the store's tables in it."""
    import sqlalchemy as sa

    from mfa_core.stores.sql import create_schema

    admin = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    finally:
        admin.dispose()
    engine = postgres_engine(url, schema, poolclass=sa.pool.NullPool)
    try:
        create_schema(engine)
    finally:
        engine.dispose()


def drop_postgres_schema(url: str, schema: str) -> None:
    """Drop ``schema`` and everything in it."""
    import sqlalchemy as sa

    admin = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        admin.dispose()


# -- private Redis clusters ------------------------------------------------------------------


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of ports for a cluster node")


class PrivateRedisCluster:
    """A Redis Cluster of this test session alone: ``masters`` primaries (each with
    ``replicas`` replicas) on free loopback ports, made with ``redis-cli --cluster create``.
    A short ``cluster-node-timeout`` makes a killed primary fail over within seconds.
    Nodes are stopped by PID."""

    def __init__(
        self, directory: Path, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 1000
    ) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            unavailable("redis-server / redis-cli are not installed, so no cluster can be made")
        self.server: str = server
        self.cli: str = cli
        self.directory = directory
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.ports = [_free_cluster_port() for _ in range(masters * (1 + replicas))]
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def _start_node(self, port: int) -> None:
        home = self.directory / str(port)
        home.mkdir(parents=True, exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                self.server,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--dir", str(home),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-replica-validity-factor", "0",
                "--repl-diskless-sync-delay", "0",
                "--save", "",
                "--appendonly", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def start(self) -> None:
        """Start every node, join them into a cluster and wait until it serves all slots
        (and every replica is in sync)."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        for port in self.ports:
            self._start_node(port)
        for port in self.ports:
            self._wait(lambda c: c.ping(), port)
        subprocess.run(
            [self.cli, "--cluster", "create"]
            + [f"127.0.0.1:{port}" for port in self.ports]
            + ["--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every live node says ``cluster_state:ok`` and every live replica's
        link to its primary is up."""

        def healthy(client: Any) -> bool:
            state = client.execute_command("CLUSTER INFO")  # parsed by redis-py into a dict
            if state.get("cluster_state") not in ("ok", b"ok"):
                return False
            info = client.info("replication")
            return info.get("role") != "slave" or info.get("master_link_status") == "up"

        for port in self.live_ports():
            self._wait(healthy, port, timeout)

    def _wait(self, check: Any, port: int, timeout: float = 30.0) -> None:
        client = redis_client(f"redis://127.0.0.1:{port}/0", socket_timeout=1.0)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if check(client):
                        return
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                if time.monotonic() > deadline:
                    raise TimeoutError(f"cluster node {port} did not become ready")
                time.sleep(0.05)
        finally:
            client.close()

    def live_ports(self) -> list[int]:
        """The ports of the nodes still running."""
        return [p for p, process in self.processes.items() if process.poll() is None]

    def primary_of(self, key: bytes) -> int:
        """The port of the live primary serving ``key``'s slot."""
        for port in self.live_ports():
            client = redis_client(f"redis://127.0.0.1:{port}/0", socket_timeout=1.0)
            try:
                slot = client.execute_command("CLUSTER KEYSLOT", key)
                for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                    if start <= slot <= end:
                        return int(primary[1])
            finally:
                client.close()
        raise RuntimeError("no live node answered")

    def signal(self, port: int, signum: int) -> None:
        """Send ``signum`` (SIGSTOP / SIGCONT) to one node's PID."""
        process = self.processes[port]
        if process.poll() is None:
            os.kill(process.pid, signum)

    def kill(self, port: int) -> None:
        """SIGKILL one node (a crash) and wait for it to exit."""
        process = self.processes[port]
        if process.poll() is None:
            process.kill()
            process.wait(10)

    def restart(self, port: int) -> None:
        """Start a killed node again (same port and node id: it rejoins the cluster, as a
        replica when its replica was promoted meanwhile)."""
        self._start_node(port)
        self._wait(lambda c: c.ping(), port)

    def stop(self) -> None:
        """SIGKILL every node this cluster started."""
        for port in list(self.processes):
            self.kill(port)

    def client(self, **options: Any) -> Any:
        """A ``redis.cluster.RedisCluster`` on this cluster."""
        from redis.cluster import ClusterNode, RedisCluster

        options.setdefault("socket_timeout", 5.0)
        options.setdefault("socket_connect_timeout", 5.0)
        nodes = [ClusterNode("127.0.0.1", port) for port in self.live_ports()]
        return RedisCluster(startup_nodes=nodes, **options)

    def async_client(self, **options: Any) -> Any:
        """A ``redis.asyncio.cluster.RedisCluster`` on this cluster."""
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode("127.0.0.1", port) for port in self.live_ports()]
        return RedisCluster(startup_nodes=nodes, **options)


# -- MariaDB / MySQL ------------------------------------------------------------------------


def mariadb_engine(url: str, database: str, **options: Any) -> Any:
    """An engine whose tables live in the database ``database`` (schema_translate_map)."""
    import sqlalchemy as sa

    connect_args = dict(options.pop("connect_args", {}))
    connect_args.setdefault("connect_timeout", 5)
    engine = sa.create_engine(url, connect_args=connect_args, **options)
    return engine.execution_options(schema_translate_map={None: database})


def async_mariadb_url(url: str) -> str:
    """``url`` with the asyncio driver (asyncmy) instead of pymysql."""
    return url.replace("+pymysql", "+asyncmy", 1)


def create_mariadb_database(url: str, database: str, *, tables: bool = True) -> None:
    """Create the database ``database`` (utf8mb4) and, with ``tables``, the store's tables."""
    import sqlalchemy as sa

    from mfa_core.stores.sql import create_schema

    mariadb_admin(url, f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    if tables:
        engine = mariadb_engine(url, database, poolclass=sa.pool.NullPool)
        try:
            create_schema(engine)
        finally:
            engine.dispose()


def drop_mariadb_database(url: str, database: str) -> None:
    """Drop the database ``database`` (made by :func:`create_mariadb_database`)."""
    mariadb_admin(url, f"DROP DATABASE IF EXISTS `{database}`")


def mariadb_admin(url: str, statement: str) -> None:
    """Run one administrative ``statement`` on the MariaDB server of ``url``."""
    import sqlalchemy as sa

    admin = sa.create_engine(url, connect_args={"connect_timeout": 5}, poolclass=sa.pool.NullPool)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(statement)
    finally:
        admin.dispose()


def empty_mariadb_database(url: str, database: str) -> None:
    """Delete every row of the store's tables in ``database`` (cheaper than new tables)."""
    import sqlalchemy as sa

    from mfa_core.stores.sql import metadata

    engine = mariadb_engine(url, database, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            for table in reversed(metadata.sorted_tables):
                if table.name == "mfa_schema_version":  # the schema's, not the test's
                    connection.execute(table.delete().where(table.c.version > 1))
                else:
                    connection.execute(table.delete())
    finally:
        engine.dispose()


# -- servers that stop answering -------------------------------------------------------------


def postgres_binary(name: str) -> str:
    """The path of a PostgreSQL server binary (``initdb``, ``pg_ctl``), or skip / fail."""
    found = shutil.which(name)
    if found is None:
        for directory in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (directory / name).exists():
                return str(directory / name)
        unavailable(f"{name} is not installed, so no private PostgreSQL can be started")
    return found


class PrivatePostgres:
    """A PostgreSQL server of this test alone (``initdb`` + ``pg_ctl`` in a temporary
    directory, trust authentication, on a free loopback port) that a test may freeze
    (SIGSTOP the postmaster and every backend, by PID) and thaw."""

    def __init__(self) -> None:
        self.initdb = postgres_binary("initdb")
        self.pg_ctl = postgres_binary("pg_ctl")
        # a directory of its own under the system's temporary directory (the server's
        # account must reach it: not under a root-only pytest directory)
        self.root = Path(tempfile.mkdtemp(prefix="mfa-test-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.frozen: list[int] = []

    def _as_owner(self, command: list[str]) -> list[str]:
        """``command`` as an unprivileged user when this process is root (initdb and the
        server refuse to run as root): the ``postgres`` account, through ``runuser``."""
        if os.geteuid() != 0:
            return command
        runuser = shutil.which("runuser")
        if runuser is None:
            unavailable("running as root without runuser: no private PostgreSQL")
        return [runuser, "-u", "postgres", "--", *command]

    def start(self) -> None:
        """Create the cluster and start it (returns once it accepts connections)."""
        quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            import pwd

            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root without a postgres account: no private PostgreSQL")
            os.chown(self.data, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            self._as_owner(
                [self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N"]
            ),
            check=True,
            timeout=120,
            **quiet,
        )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off "
            "-c shared_buffers=16MB -c max_connections=40"
        )
        subprocess.run(
            self._as_owner(
                [self.pg_ctl, "-D", str(self.data), "-o", options, "-w", "-t", "60", "start"]
            ),
            check=True,
            timeout=90,
            **quiet,
        )

    def postmaster(self) -> int:
        """The postmaster's PID (first line of ``postmaster.pid``)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def processes(self) -> list[int]:
        """The postmaster and its children (the backends and helpers), by PID."""
        parent = self.postmaster()
        found = [parent]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(stat.parent.name))
        return found

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: the server says nothing any more,
        while the kernel keeps its sockets open (and acknowledges what is sent)."""
        self.frozen = self.processes()
        for pid in self.frozen:
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT what :meth:`freeze` stopped."""
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    def stop(self) -> None:
        """Thaw, then stop the server at once (``pg_ctl stop -m immediate``)."""
        self.thaw()
        subprocess.run(
            self._as_owner([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"]),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


class BlackHole:
    """A loopback TCP listener that accepts connections and never answers (nor closes)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self.listener.close()
        for connection in self.accepted:
            connection.close()


class FreezableProxy:
    """A loopback TCP proxy to ``(host, port)`` whose relaying a test can stop: once
    frozen, bytes in either direction are held (a black-holed network path: nothing is
    closed, nothing arrives)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.running = threading.Event()
        self.running.set()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target, timeout=10)
            server.settimeout(None)
            self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._relay, args=(source, sink), daemon=True).start()

    def _relay(self, source: socket.socket, sink: socket.socket) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            self.running.wait()
            try:
                sink.sendall(data)
            except OSError:
                return

    def freeze(self) -> None:
        """Hold every byte from now on."""
        self.running.clear()

    def close(self) -> None:
        """Stop listening, close every relayed connection, let held bytes go."""
        self.listener.close()
        self.running.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()
