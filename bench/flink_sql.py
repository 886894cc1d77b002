"""A peer on the same topic: Apache Flink SQL through PyFlink, in local mode, parallelism 1.

The job (:mod:`bench.flink_job`) is a 7-day ``TUMBLE`` window, offset to Mondays,
``SUM(tokens) GROUP BY model`` over a Kafka table of the dataset topic. What it needs,
prepared on first use and kept under ``--data-dir`` (git-ignored):

- PyFlink (PyPI ``apache-flink``) in a virtualenv of its own, ``<data-dir>/pyflink-<version>``:
  it requires ``apache-beam``, which pins ``redis<6`` and ``protobuf<6``; in the project's
  ``.venv`` pip would replace redis 8.1 (the client tokenboard is measured with) by 5.3 and
  protobuf 7 (under the OTLP receiver's ``opentelemetry-proto``) by 5.29. That is also why
  it is not in the ``bench`` extra.
- The Kafka SQL connector jar of the matching Flink line, resolved from Maven Central with
  ``mvn dependency:copy`` (as the local stack resolves the broker's jars) into
  ``<data-dir>/flink-jars``.
- A Java runtime that Flink 2.x supports (11, 17 or 21).

When any of these is missing and cannot be made, :func:`run_flink` returns a row that
says why, and the benchmark goes on.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from bench.child import last_error_line, run_child
from bench.dataset import Expected
from bench.figures import Throughput
from bench.progress import say
from bench.weekly_windows import check_windows
from streams.settings import Settings

#: PyPI ``apache-flink``; the connector below is built for this Flink line (2.2).
FLINK_VERSION = "2.2.1"
CONNECTOR_VERSION = "5.0.0-2.2"
CONNECTOR = f"org.apache.flink:flink-sql-connector-kafka:{CONNECTOR_VERSION}"
#: Pinned: the plugin Maven 3.8 picks for the bare ``dependency:`` prefix is a 2015 release.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
#: Java versions Flink 2.x is built and tested for.
SUPPORTED_JAVA = (11, 17, 21)
NAME = "Flink SQL: TUMBLE 7-day SUM(tokens) GROUP BY model (local, parallelism 1)"
REPO = Path(__file__).resolve().parent.parent


class SetupError(Exception):
    """PyFlink, the connector jar or Java cannot be had here; the message says why."""


def java_major(version_output: str) -> int | None:
    """The major version in ``java -version`` output (``1.8.0_392`` is 8), None if absent."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def java_version() -> str:
    """The first line of ``java -version`` ("" without Java)."""
    java = shutil.which("java")
    if java is None:
        return ""
    done = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().splitlines()[0] if done.returncode == 0 else ""


def check_java() -> str:
    """The Java version line, or :class:`SetupError` when Flink cannot run on it."""
    line = java_version()
    if not line:
        raise SetupError("no `java` on PATH: PyFlink runs Flink in a JVM (Java 11, 17 or 21)")
    major = java_major(line)
    if major not in SUPPORTED_JAVA:
        raise SetupError(
            f"Flink {FLINK_VERSION} supports Java {', '.join(map(str, SUPPORTED_JAVA))}; "
            f"`java -version` says: {line}"
        )
    return line


def _pyflink_version(python: str) -> str:
    done = subprocess.run(
        [python, "-c", "import pyflink.version as v; print(v.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def pyflink_python(data_dir: Path, explicit: str = "") -> str:
    """An interpreter with PyFlink :data:`FLINK_VERSION`: ``explicit``, else a managed venv."""
    if explicit:
        found = _pyflink_version(explicit)
        if found != FLINK_VERSION:
            raise SetupError(
                f"{explicit} has apache-flink {found or 'not installed'}, "
                f"the job needs {FLINK_VERSION}"
            )
        return explicit
    venv = (data_dir / f"pyflink-{FLINK_VERSION}").absolute()
    python = str(venv / "bin" / "python")
    if Path(python).exists() and _pyflink_version(python) == FLINK_VERSION:
        return python
    log = data_dir / "logs" / f"pyflink-{FLINK_VERSION}-install.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    say(f"  installing apache-flink=={FLINK_VERSION} into {venv} (first run only; ~800 MB)")
    steps = [
        (f"python -m venv {venv}", [sys.executable, "-m", "venv", str(venv)]),
        (f"pip install apache-flink=={FLINK_VERSION}",
         [python, "-m", "pip", "install", "--disable-pip-version-check", "-q",
          f"apache-flink=={FLINK_VERSION}"]),
    ]  # fmt: skip
    with log.open("ab") as out:
        for label, cmd in steps:
            try:
                code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise SetupError(f"`{label}` failed: {exc}") from None
            if code.returncode != 0:
                out.flush()
                raise SetupError(
                    f"`{label}` exited with {code.returncode}: "
                    f"{last_error_line(log) or 'see ' + str(log)}"
                )
    if _pyflink_version(python) != FLINK_VERSION:
        raise SetupError(f"apache-flink {FLINK_VERSION} installed into {venv} does not import")
    return python


def connector_jar(data_dir: Path) -> Path:
    """The Kafka SQL connector jar, copied from Maven Central on first use."""
    jars = data_dir / "flink-jars"
    jar = jars / f"flink-sql-connector-kafka-{CONNECTOR_VERSION}.jar"
    if jar.exists():
        return jar
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SetupError(
            f"no `mvn` on PATH to resolve {CONNECTOR} from Maven Central "
            "(Debian: apt-get install maven)"
        )
    jars.mkdir(parents=True, exist_ok=True)
    say(f"  resolving {CONNECTOR} from Maven Central (first run only)")
    # No pom.xml in the working folder: the copy goal runs without a project.
    done = subprocess.run(
        [mvn, "-q", "-B", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={CONNECTOR}:jar",
         f"-DoutputDirectory={jars}"],
        cwd=jars, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0 or not jar.exists():
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise SetupError(f"Maven could not resolve {CONNECTOR}: {' '.join(tail)}")
    return jar


def peer_versions() -> dict[str, str]:
    """What the results list for this peer (and Bytewax): versions, or why they are absent."""
    try:
        bytewax = metadata.version("bytewax")
    except metadata.PackageNotFoundError:
        bytewax = "not installed"
    return {
        "bytewax": bytewax,
        "apache-flink (PyFlink, own virtualenv)": FLINK_VERSION,
        "flink-sql-connector-kafka": CONNECTOR_VERSION,
        "java": java_version() or "not found",
    }


async def run_flink(
    settings: Settings,
    expected: Expected,
    *,
    run_id: str,
    max_seconds: float,
    data_dir: Path,
    python: str = "",
) -> Throughput:
    """Measure Flink SQL over the dataset; a row with the reason when it cannot run here."""
    try:
        await asyncio.to_thread(check_java)
        interpreter = await asyncio.to_thread(pyflink_python, data_dir, python)
        jar = await asyncio.to_thread(connector_jar, data_dir)
    except SetupError as exc:
        say(f"  flink sql: cannot run here: {exc}")
        return Throughput(name=NAME, events=0, seconds=0.0, complete=False, error=str(exc))
    result_path = data_dir / f"{run_id}.json"
    result = await run_child(
        NAME,
        "bench.flink_job",
        [
            "--bootstrap",
            settings.kafka_bootstrap,
            "--topic",
            expected.topic,
            "--group",
            run_id,
            "--jar",
            str(jar),
            "--target",
            str(expected.events),
            "--max-seconds",
            str(max_seconds),
            "--result",
            str(result_path),
        ],
        result_path,
        data_dir / "logs" / f"{run_id}.log",
        timeout_s=max_seconds + 120,
        target=expected.events,
        notes=[
            "JVM MiniCluster (PyFlink local mode), parallelism 1, bounded read to the "
            "offsets at start; clock from the first to the last event's NOW() in the "
            "aggregation; CPU and RSS include the JVM",
        ],
        python=interpreter,
        env={"PYTHONPATH": str(REPO)},
        with_descendants=True,
    )
    if result.complete and result_path.exists():
        data = json.loads(result_path.read_text())
        rows = [(int(s), str(m), int(t)) for s, m, t in data.get("windows", [])]
        result.exact, note = check_windows(rows, expected.cell_tokens)
        result.notes.append(note)
    say(f"  flink sql: {result.rate:,.0f} events/s over {result.events:,} events")
    return result
