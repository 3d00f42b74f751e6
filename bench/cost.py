"""What the stack costs to run: each service's memory and CPU when idle, and its CPU per 1,000
changes/s, so a user can size a machine.

Each service is its process tree on this machine (PostgreSQL's postmaster with its backends and
WAL senders, MariaDB, the Kafka broker, the Connect worker, the S3 server), read from ``/proc``.
Idle: whatever pipelines are deployed (the demo's, after ``make demo``) with no writes, over
``--idle`` seconds. Loaded: ``cdc_latency.py``'s PostgreSQL -> PostgreSQL workload at ``--rate``
changes/s for ``--seconds``, with its target poller (which costs PostgreSQL a query every 10 ms).
Not a test. Run: ``python bench/cost.py [--idle 60] [--rate 1000] [--seconds 120]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cdc_latency import run_pair  # noqa: E402

from cdc_platform.settings import load_stack_settings  # noqa: E402

SERVICES = {
    "postgresql": "postgres",
    "mariadb": "mariadb",
    "kafka": "kafka",
    "connect": "connect",
    "s3": "s3",
}
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds, RSS KiB) of one process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the command name may hold spaces
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS, int(fields[21]) * PAGE_KB


def snapshot(roots: dict[str, int]) -> dict[str, tuple[float, int]]:
    """CPU seconds and RSS (KiB) of each service's process tree."""
    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(int(p))) is not None}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out = {}
    for service, root in roots.items():
        cpu = rss = 0
        todo = [root]
        while todo:
            pid = todo.pop()
            if pid in stats:
                cpu += stats[pid][1]
                rss += stats[pid][2]
                todo += children.get(pid, [])
        out[service] = (cpu, rss)
    return out


def service_roots(run_dir: Path) -> dict[str, int]:
    """The stack's pid files (``{"pid": ..., "start_time": ...}``) of the services that run."""
    roots = {}
    for service, name in SERVICES.items():
        path = run_dir / f"{name}.pid"
        if path.exists():
            pid = int(json.loads(path.read_text())["pid"])
            if Path(f"/proc/{pid}").exists():
                roots[service] = pid
    return roots


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=60)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument(
        "--change-events", choices=("lean", "full"), help="options.change_events (default: lean)"
    )
    args = parser.parse_args()
    options = {"change_events": args.change_events} if args.change_events else {}
    stack = load_stack_settings()
    roots = service_roots(stack.run_dir)
    before = snapshot(roots)
    time.sleep(args.idle)
    after = snapshot(roots)
    idle = {s: ((after[s][0] - before[s][0]) / args.idle, after[s][1]) for s in roots}

    marks: dict[str, tuple[float, dict[str, tuple[float, int]]]] = {}

    def meter(event: str) -> None:
        marks[event] = (time.monotonic(), snapshot(roots))

    result = run_pair(stack, "postgresql-postgresql", args.rate, args.seconds, options, meter=meter)
    elapsed = marks["stop"][0] - marks["start"][0]
    rate = result["changes"] / elapsed
    lines = [
        "# Cost of the stack",
        "",
        f"Written by `python bench/cost.py --idle {args.idle:.0f} --rate {args.rate} --seconds {args.seconds:.0f}"
        f"{' --change-events ' + args.change_events if args.change_events else ''}` on "
        f"{time.strftime('%Y-%m-%d')}. Idle: deployed pipelines, no writes. Loaded: {result['changes']:,} changes "
        f"PostgreSQL -> PostgreSQL in {elapsed:.0f} s ({rate:,.0f}/s; p50 {result['p50'] * 1000:.0f} ms).",
        "",
        "| service | idle RSS MB | idle CPU % of a core | CPU % of a core at the load | CPU s per 1,000 changes |",
        "|---|---:|---:|---:|---:|",
    ]
    total = [0.0, 0.0, 0.0, 0.0]
    for service in roots:
        busy = (marks["stop"][1][service][0] - marks["start"][1][service][0]) / elapsed
        per_thousand = max(0.0, busy - idle[service][0]) / rate * 1000
        row = (idle[service][1] / 1024, idle[service][0] * 100, busy * 100, per_thousand)
        total = [a + b for a, b in zip(total, row, strict=True)]
        lines.append(f"| {service} | {row[0]:,.0f} | {row[1]:.1f} | {row[2]:.1f} | {row[3]:.3f} |")
        print(f"{service:11} idle {row[0]:7,.0f} MB {row[1]:5.1f} % CPU | at {rate:,.0f} changes/s {row[2]:5.1f} % CPU "
              f"| {row[3]:.3f} CPU s per 1,000 changes", flush=True)  # fmt: skip
    lines.append(f"| **all** | {total[0]:,.0f} | {total[1]:.1f} | {total[2]:.1f} | {total[3]:.3f} |")
    print(f"{'all':11} idle {total[0]:7,.0f} MB {total[1]:5.1f} % CPU | {total[2]:5.1f} % CPU at the load | "
          f"{total[3]:.3f} CPU s per 1,000 changes")  # fmt: skip
    (ROOT / "bench" / "cost.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
