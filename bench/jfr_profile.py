"""Where a Kafka Connect worker's CPU goes during a bench phase, from a JDK Flight Recorder recording.

The catch-up drain is limited by the sink task's thread (issue 35), and CPU samples of the process
alone cannot say whether that thread spends its time in the JSON converter, Debezium's record
handling, Hibernate's statement binding or the JDBC driver. JFR samples every running Java thread
every 10-20 ms at a few percent of overhead, so a recording over the drain answers it. Each sample
is put in the innermost stage its stack passes through (a JDBC driver call made from Hibernate
counts as the driver), then shares are given per thread group and per stage.

Used by ``bench/catch_up.py --profile``; also runnable on a saved recording:
``python bench/jfr_profile.py FILE.jfr``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cdc_platform.stack.processes import PidFile  # noqa: E402

# (stage, frame prefixes): a sample goes to the stage of the innermost matching frame.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("consumer fetch", ("org.apache.kafka.clients.consumer", "org.apache.kafka.common.record")),
    ("producer", ("org.apache.kafka.clients.producer",)),
    (
        "json converter",
        (
            "org.apache.kafka.connect.json",
            "com.fasterxml.jackson",
            "io.cdcplatform.connect.SchemaCachingJsonConverter",
        ),
    ),
    ("exact-value converter", ("io.cdcplatform.connect.ExactValue", "io.cdcplatform.connect.Intervals")),
    ("transforms", ("org.apache.kafka.connect.transforms", "io.debezium.transforms")),
    ("platform sink wrapper", ("io.cdcplatform.connect.Resilient",)),
    ("debezium jdbc sink", ("io.debezium.connector.jdbc",)),
    (
        "debezium source",
        (
            "io.debezium.connector.postgresql",
            "io.debezium.connector.mysql",
            "io.debezium.connector.binlog",
            "io.debezium.pipeline",
            "io.debezium.relational",
        ),
    ),
    ("hibernate", ("org.hibernate",)),
    ("jdbc driver", ("org.mariadb.jdbc", "org.postgresql", "com.mysql")),
    ("socket i/o", ("sun.nio.ch", "java.net.Socket", "java.net.SocketInputStream", "sun.security.ssl")),
    ("logging", ("org.apache.log4j", "org.slf4j", "ch.qos.reload4j")),
)

THREAD_GROUPS: tuple[tuple[str, str], ...] = (
    ("task-thread-", "connector task threads"),
    ("kafka-producer-network-thread", "producer network threads"),
    ("kafka-coordinator-heartbeat-thread", "consumer heartbeats"),
    ("DistributedHerder", "herder"),
    ("qtp", "REST server"),
)


def start(pid: int, name: str, path: Path) -> None:
    """Start a recording with the 'profile' settings (execution samples every 10 ms).

    The stack's JVMs run as their own user when started by root, so the recording's directory is
    handed to that user first: jcmd reports success even when the JVM could not open the file.
    """
    owner = os.stat(f"/proc/{pid}").st_uid
    if os.getuid() == 0 and owner != 0:
        os.chown(path.parent, owner, -1)
    subprocess.run(["jcmd", str(pid), "JFR.start", f"name={name}", "settings=profile", f"filename={path}"],
                   check=True, capture_output=True)  # fmt: skip


def stop(pid: int, name: str) -> None:
    """Stop the recording; the JVM writes it to the file given at start."""
    subprocess.run(["jcmd", str(pid), "JFR.stop", f"name={name}"], check=True, capture_output=True)


def connect_pid() -> int:
    """The local stack's Connect worker (the first one when several run)."""
    pid = PidFile(ROOT / ".stack" / "run" / "connect.pid").running_pid()
    if pid is None:
        raise RuntimeError("no Connect worker runs: cdc-platform stack up")
    return pid


def stage_of(frames: list[str]) -> str:
    """The innermost known stage on a stack given leaf first."""
    for frame in frames:
        for stage, prefixes in STAGES:
            if frame.startswith(prefixes):
                return stage
    return "other: " + (frames[0].split("(")[0] if frames else "?")


def thread_group(thread: str) -> str:
    for prefix, group in THREAD_GROUPS:
        if thread.startswith(prefix):
            if group == "connector task threads":
                return "task " + thread.removeprefix(prefix)
            return group
    return "other threads"


_THREAD = re.compile(r'sampledThread = "([^"]*)"')


def samples(path: Path) -> list[tuple[str, list[str]]]:
    """(thread, frames leaf first) of every execution sample in the recording."""
    text = subprocess.run(["jfr", "print", "--events", "jdk.ExecutionSample", "--stack-depth", "128", str(path)],
                          check=True, capture_output=True, text=True).stdout  # fmt: skip
    found: list[tuple[str, list[str]]] = []
    thread, frames, in_stack = "", [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("sampledThread"):
            match = _THREAD.search(stripped)
            thread = match.group(1) if match else "?"
        elif stripped.startswith("stackTrace = ["):
            frames, in_stack = [], True
        elif in_stack and stripped == "]":
            found.append((thread, frames))
            in_stack = False
        elif in_stack and stripped and stripped != "...":
            frames.append(stripped)
    return found


def gc_pause_ms(path: Path) -> float:
    """Total stop-the-world GC pause in the recording."""
    text = subprocess.run(["jfr", "print", "--events", "jdk.GCPhasePause", str(path)],
                          check=True, capture_output=True, text=True).stdout  # fmt: skip
    total = 0.0
    for match in re.finditer(r"duration = ([\d.]+) (ms|s|us)", text):
        value, unit = float(match.group(1)), match.group(2)
        total += value * {"ms": 1.0, "s": 1000.0, "us": 0.001}[unit]
    return total


def summarize(path: Path, top: int = 12) -> str:
    """Shares per thread group, and per stage within the busiest task thread(s)."""
    found = samples(path)
    if not found:
        return f"{path}: no execution samples"
    by_group = Counter(thread_group(t) for t, _ in found)
    lines = [f"JFR {path.name}: {len(found):,} execution samples, GC pauses {gc_pause_ms(path):,.0f} ms", "",
             "| threads | share of samples |", "|---|---:|"]  # fmt: skip
    for group, count in by_group.most_common(top):
        lines.append(f"| {group} | {100 * count / len(found):.1f} % |")
    tasks = [(t, f) for t, f in found if thread_group(t).startswith("task ")]
    by_stage = Counter(stage_of(f) for _, f in tasks)
    lines += ["", f"Task threads, {len(tasks):,} samples, by the innermost stage on the stack:", "",
              "| stage | share of task samples |", "|---|---:|"]  # fmt: skip
    for stage, count in by_stage.most_common(top):
        lines.append(f"| {stage} | {100 * count / max(1, len(tasks)):.1f} % |")
    return "\n".join(lines)


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(summarize(Path(argument)))
