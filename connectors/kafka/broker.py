"""The project's own local Apache Kafka: one KRaft node on 127.0.0.1, data under `.cache/kafka/`.

    python -m connectors.kafka.broker up|down|status       (`make kafka-up` / `make kafka-down`)

From Python (tests, the demo, the bench): `ensure_broker() -> "127.0.0.1:19092"`, idempotent.

Where the broker comes from, first that applies:
1. `KAFKA_BOOTSTRAP_SERVERS` is set: an existing cluster; nothing is started or stopped.
2. `KAFKA_HOME` is set: an unpacked Kafka distribution; its `bin/kafka-storage.sh` formats the
   storage and `bin/kafka-server-start.sh` runs the broker.
3. Otherwise `org.apache.kafka:kafka_2.13:<KAFKA_VERSION>` and its runtime dependencies are resolved
   from Maven Central with `mvn` (connectors/kafka/pom.xml) into `.cache/kafka/<version>/libs` once,
   and the broker runs as `java -cp 'libs/*' kafka.Kafka server.properties`.

Ports are fixed and not Kafka's defaults, so that the project never talks to another Kafka on the
machine by accident: 19092 (clients) and 19093 (controller), overridable with
`PAYRECON_KAFKA_PORT` / `PAYRECON_KAFKA_CONTROLLER_PORT`. The broker runs detached (its own session),
with a pid file and its logs under `.cache/kafka/logs/`; `down` sends SIGTERM, waits, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = Path(__file__).resolve().with_name("pom.xml")

# Kafka 4.x (KRaft only). aiokafka 0.14 under faust-streaming 0.15 speaks the protocol versions that
# Kafka 4.0 kept (KIP-896): produce, fetch, group membership and offset commits were checked against
# this version by tests/integration/test_broker.py.
KAFKA_VERSION = os.environ.get("PAYRECON_KAFKA_VERSION", "4.1.1")
BROKER_PORT_DEFAULT = 19092
CONTROLLER_PORT_DEFAULT = 19093
# A first start formats the storage and elects the single controller: seconds on 2 cores, but a
# cold JVM on a loaded CI machine can take much longer.
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
HEAP = "-Xms256m -Xmx1g"


class BrokerError(RuntimeError):
    """The local broker cannot be provided; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class BrokerPaths:
    """Every file of one local broker (one per client port), all under `.cache/kafka/`."""

    root: Path
    port: int
    controller_port: int

    @property
    def libs(self) -> Path:
        return self.root / KAFKA_VERSION / "libs"

    @property
    def data(self) -> Path:
        return self.root / f"data-{self.port}"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def properties(self) -> Path:
        return self.root / f"server-{self.port}.properties"

    @property
    def log4j(self) -> Path:
        return self.root / f"log4j2-{self.port}.properties"

    @property
    def pid_file(self) -> Path:
        return self.root / f"broker-{self.port}.pid"

    @property
    def lock_file(self) -> Path:
        return self.root / f"broker-{self.port}.lock"

    @property
    def out_file(self) -> Path:
        return self.logs / f"broker-{self.port}.out"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise BrokerError(f"{name}={raw!r} is not a TCP port number (1-65535)")
    return int(raw)


def paths() -> BrokerPaths:
    """The files of the local broker this environment names (ports from the environment)."""
    root = Path(os.environ.get("PAYRECON_KAFKA_CACHE", REPO_ROOT / ".cache" / "kafka"))
    return BrokerPaths(
        root=root,
        port=_port("PAYRECON_KAFKA_PORT", BROKER_PORT_DEFAULT),
        controller_port=_port("PAYRECON_KAFKA_CONTROLLER_PORT", CONTROLLER_PORT_DEFAULT),
    )


def external_bootstrap() -> str | None:
    """`KAFKA_BOOTSTRAP_SERVERS` when set (an existing cluster the project must use), else None."""
    value = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    return value or None


# --- health ---------------------------------------------------------------------------------------


async def _metadata_ok(bootstrap: str, timeout_s: float) -> bool:
    from aiokafka.client import AIOKafkaClient

    # A refused connection is the expected answer while the broker starts; aiokafka logs each one
    # at ERROR, which would bury the one message that matters.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        # A KRaft node answers metadata before it has registered itself as a broker; only a
        # non-empty broker list means that topics can be created and written.
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.close()


def is_healthy(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """True when a metadata request to `bootstrap` succeeds and lists at least one broker."""
    return asyncio.run(_metadata_ok(bootstrap, timeout_s))


# --- resolution -----------------------------------------------------------------------------------


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise BrokerError(
            "java is not installed: the local Kafka broker needs Java 17 or newer "
            "(Debian: apt-get install openjdk-17-jre-headless), or set KAFKA_BOOTSTRAP_SERVERS "
            "to use an existing Kafka cluster"
        )
    return java


def resolve_libs(p: BrokerPaths) -> Path:
    """Resolve Kafka's jars from Maven Central into `p.libs` once (atomically); return the folder."""
    marker = p.libs / ".resolved"
    if marker.exists():
        return p.libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError(
            "mvn is not installed: the local Kafka broker is resolved from Maven Central with Maven "
            "(Debian: apt-get install maven), or set KAFKA_HOME to an unpacked Kafka distribution, "
            "or KAFKA_BOOTSTRAP_SERVERS to an existing cluster"
        )
    staging = p.libs.with_name(f"libs.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    print(f"resolving Apache Kafka {KAFKA_VERSION} from Maven Central into {p.libs} (first time only)", file=sys.stderr)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(POM),
        f"-Dkafka.version={KAFKA_VERSION}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        tail = (done.stdout + done.stderr).strip()[-2000:]
        raise BrokerError(f"mvn could not resolve org.apache.kafka:kafka_2.13:{KAFKA_VERSION}:\n{tail}")
    (staging / ".resolved").write_text(KAFKA_VERSION + "\n")
    # Another process may have finished the same resolution meanwhile; either copy is complete.
    try:
        staging.rename(p.libs)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return p.libs


# --- configuration --------------------------------------------------------------------------------


def _write_config(p: BrokerPaths) -> None:
    p.logs.mkdir(parents=True, exist_ok=True)
    p.data.mkdir(parents=True, exist_ok=True)
    props = f"""\
# Written by connectors/kafka/broker.py; regenerated on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{p.controller_port}
listeners=PLAINTEXT://127.0.0.1:{p.port},CONTROLLER://127.0.0.1:{p.controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{p.port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={p.data}
num.partitions=4
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Consumers of a one-node test cluster should not wait 3 s for more members to join.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
log.retention.hours=24
log.segment.bytes=67108864
"""
    p.properties.write_text(props)
    log_file = p.logs / f"server-{p.port}.log"
    p.log4j.write_text(
        f"""\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.controller.name = org.apache.kafka.controller
logger.controller.level = INFO
"""
    )


def _cluster_id() -> str:
    """A random cluster id as Kafka makes them: 16 random bytes in URL-safe base64.

    One id in 64 would start with "-", which `kafka-storage format` reads as an option and
    fails on; Kafka's own `Uuid.randomUuid` draws again in that case, and so does this.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _format_and_start(p: BrokerPaths) -> subprocess.Popen[bytes]:
    _write_config(p)
    env = dict(os.environ)
    env["KAFKA_HEAP_OPTS"] = HEAP
    env["KAFKA_LOG4J_OPTS"] = f"-Dlog4j2.configurationFile={p.log4j}"
    env["LOG_DIR"] = str(p.logs)
    kafka_home = os.environ.get("KAFKA_HOME")
    formatted = (p.data / "meta.properties").exists()
    if kafka_home:
        bin_dir = Path(kafka_home) / "bin"
        if not (bin_dir / "kafka-server-start.sh").exists():
            raise BrokerError(f"KAFKA_HOME={kafka_home}: no bin/kafka-server-start.sh there")
        fmt = [str(bin_dir / "kafka-storage.sh"), "format", "--ignore-formatted", f"--cluster-id={_cluster_id()}"]
        fmt += ["-c", str(p.properties)]
        start = [str(bin_dir / "kafka-server-start.sh"), str(p.properties)]
    else:
        java = _java()
        libs = resolve_libs(p)
        base = [java, *HEAP.split(), f"-Dlog4j2.configurationFile={p.log4j}", f"-Dkafka.logs.dir={p.logs}"]
        base += ["-cp", f"{libs}/*"]
        fmt = [*base, "kafka.tools.StorageTool", "format", "--ignore-formatted", f"--cluster-id={_cluster_id()}"]
        fmt += ["-c", str(p.properties)]
        start = [*base, "-XX:+UseG1GC", "-Djava.awt.headless=true", "kafka.Kafka", str(p.properties)]
    if not formatted:
        done = subprocess.run(fmt, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise BrokerError(
                f"formatting the Kafka storage in {p.data} failed:\n{(done.stdout + done.stderr)[-2000:]}"
            )
    out = p.out_file.open("ab")
    # Its own session: the broker outlives the command that started it and a Ctrl-C in the
    # terminal that ran `make kafka-up` does not reach it; `down` stops it by pid.
    proc = subprocess.Popen(start, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=p.root)
    out.close()
    p.pid_file.write_text(f"{proc.pid}\n")
    return proc


# --- lifecycle ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(p: BrokerPaths) -> Iterator[None]:
    # Several test processes and a terminal may all ask for the broker at once; one starts it.
    p.root.mkdir(parents=True, exist_ok=True)
    with p.lock_file.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _our_pid(p: BrokerPaths) -> int | None:
    """The pid in the pid file when that process is alive and is our broker (not a reused pid)."""
    try:
        pid = int(p.pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(p.properties).encode() in cmdline else None


@dataclass(frozen=True, slots=True)
class BrokerHandle:
    """A broker the caller can use: `bootstrap` servers and whether this call started it."""

    bootstrap: str
    started: bool
    external: bool


def start(timeout_s: float = START_TIMEOUT_S) -> BrokerHandle:
    """Make sure a broker answers; start the local one if needed. Idempotent and safe to race."""
    external = external_bootstrap()
    if external is not None:
        if not is_healthy(external, timeout_s=10.0):
            raise BrokerError(f"KAFKA_BOOTSTRAP_SERVERS={external} does not answer a metadata request")
        return BrokerHandle(external, started=False, external=True)
    p = paths()
    with _locked(p):
        if is_healthy(p.bootstrap):
            return BrokerHandle(p.bootstrap, started=False, external=False)
        if _our_pid(p) is None:
            proc = _format_and_start(p)
        else:
            proc = None  # our broker is alive but not ready yet: wait for it
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise BrokerError(
                    f"the Kafka broker exited with code {proc.returncode} while starting; see {p.out_file} "
                    f"and {p.logs}/server-{p.port}.log (is port {p.port} or {p.controller_port} taken?)"
                )
            if is_healthy(p.bootstrap, timeout_s=2.0):
                return BrokerHandle(p.bootstrap, started=proc is not None, external=False)
            time.sleep(0.5)
        raise BrokerError(
            f"the Kafka broker did not answer on {p.bootstrap} within {timeout_s:.0f} s; see {p.out_file}"
        )


def ensure_broker() -> str:
    """The bootstrap servers of a healthy broker (the external one, or the local one started now)."""
    return start().bootstrap


def stop(timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the local broker (SIGTERM, wait up to `timeout_s`, then SIGKILL); True if one was running."""
    if external_bootstrap() is not None:
        return False
    p = paths()
    with _locked(p):
        pid = _our_pid(p)
        if pid is None:
            p.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _our_pid(p) == pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap it when this process is its parent
            time.sleep(0.2)
        if _our_pid(p) == pid:
            os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        p.pid_file.unlink(missing_ok=True)
        return True


def status() -> str:
    """One line describing the broker this environment uses."""
    external = external_bootstrap()
    if external is not None:
        state = "answers" if is_healthy(external) else "does NOT answer"
        return f"external cluster KAFKA_BOOTSTRAP_SERVERS={external} {state}"
    p = paths()
    pid = _our_pid(p)
    healthy = is_healthy(p.bootstrap)
    if pid is None and not healthy:
        return f"local broker on {p.bootstrap}: stopped"
    who = f"pid {pid}" if pid is not None else "not started by this checkout"
    return f"local broker on {p.bootstrap}: {'up' if healthy else 'starting or unhealthy'} ({who}; logs in {p.logs})"


def main(argv: list[str] | None = None) -> int:
    """`up`, `down` or `status`; exit code 0 on success, 1 with a message on a BrokerError."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in {"up", "down", "status"}:
        print("usage: python -m connectors.kafka.broker up|down|status", file=sys.stderr)
        return 2
    try:
        if args[0] == "up":
            handle = start()
            print(f"kafka {'started' if handle.started else 'already up'}: {handle.bootstrap}")
        elif args[0] == "down":
            print("kafka stopped" if stop() else "kafka was not running (nothing to stop)")
        else:
            print(status())
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
