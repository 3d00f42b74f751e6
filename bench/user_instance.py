"""What runs beside a benchmark on a user's machine: the demo pipeline replicating, and
``dagster-daemon`` with the platform's sensors and schedules on (health sensor, metrics schedule,
alert sensor, schema sensor, quality schedules), so that a figure includes what they cost.

Used by ``bench/cdc_latency.py`` (``--alone`` turns it off). The daemon gets a fresh DAGSTER_HOME
with the project's ``dagster_home/dagster.yaml``, so the bench leaves the user's run history alone;
the demo pipeline is (re)deployed by ``python -m cdc_platform.demo`` and left running, as ``make
demo`` leaves it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the sensors tick every 30 s at most; a run starts once the daemon has ticked each at least once
WARM_UP_SECONDS = 45


@contextlib.contextmanager
def beside_a_user_instance(log_dir: Path) -> Iterator[dict]:
    """Deploy the demo, start the daemon, yield what ran (for the report), stop the daemon."""
    demo = subprocess.run([sys.executable, "-m", "cdc_platform.demo"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    if demo.returncode != 0:
        raise RuntimeError(f"the demo pipeline did not deploy: {demo.stdout[-1500:]}{demo.stderr[-1500:]}")
    with tempfile.TemporaryDirectory(prefix="bench-dagster-home-") as home:
        shutil.copy(ROOT / "dagster_home" / "dagster.yaml", Path(home) / "dagster.yaml")
        env = {**os.environ, "DAGSTER_HOME": home}
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / "bench-daemon.log"
        with open(log_path, "w") as log:
            daemon = subprocess.Popen([sys.executable, "-m", "dagster._daemon", "run", "-w", "workspace.yaml"],
                                      cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)  # fmt: skip
            try:
                time.sleep(WARM_UP_SECONDS)
                if daemon.poll() is not None:
                    raise RuntimeError(f"dagster-daemon exited ({daemon.returncode}); see {log_path}")
                yield {"daemon_log": str(log_path)}
                if daemon.poll() is not None:
                    raise RuntimeError(f"dagster-daemon exited during the run; see {log_path}")
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(daemon.pid, signal.SIGTERM)
                try:
                    daemon.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(daemon.pid, signal.SIGKILL)
