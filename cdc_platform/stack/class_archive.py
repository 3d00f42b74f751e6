"""A class-data-sharing archive per stack JVM, so a restarted Kafka Connect worker starts its tasks
seconds sooner.

Why: after a worker crash, the JDBC sink tasks spent most of their start loading and verifying
Hibernate's ~10,000 classes in a cold JVM, on the same two cores as every other task starting at
once (issue 34: Connect-kill recovery 11-15 s against 10 s). A dynamic CDS archive (JEP 350) holds
those classes already parsed and verified, including the ones Connect's plugin class loaders load.

How, on the JDK 17 the stack runs (``-XX:+AutoCreateSharedArchive`` needs JDK 19):

- The archive's name carries a key of everything that makes it valid: the ``java`` binary, the JVM
  flags, and the names, sizes and times of every jar on the class path and plugin path. A new
  Debezium, Kafka or JDK is a new key, so a stale archive is never used (the JVM would otherwise
  ignore it silently, every start, for good).
- Without a valid archive, the JVM dumps one when it exits normally (``stack down``, a restart);
  a ``kill -9`` dumps nothing and the next start tries again.
- A dump is written under a temporary name and checked with ``-Xshare:on`` before the next start
  uses it: a dump cut short (the stop's timeout) is thrown away, never half-read.
- Jolokia's agent is loaded at start; the JVM refuses to dump with an agent unless
  ``AllowArchivingWithJavaAgent`` is set, at dump and at use alike. Jolokia transforms no class, so
  the archived classes are the ones the jars hold.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

#: what a dump and a use of the archive both need (the flags must match for the JVM to use it)
AGENT_FLAGS = ("-XX:+UnlockDiagnosticVMOptions", "-XX:+AllowArchivingWithJavaAgent")
#: the dump warns for every class it skips (thousands): only errors reach the service's log
QUIET_FLAGS = ("-Xlog:cds=error", "-Xlog:cds+dynamic=error")


def archive_key(java: Path, flags: Iterable[str], roots: Iterable[Path]) -> str:
    """A digest of what the archive depends on; jars are listed, not read, so it costs milliseconds."""
    digest = hashlib.sha256()
    java_real = Path(java).resolve()
    stat = java_real.stat()
    digest.update(f"{java_real}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    for flag in flags:
        digest.update(f"{flag}\n".encode())
    for root in roots:
        for jar in sorted(Path(root).rglob("*.jar")) if Path(root).is_dir() else [Path(root)]:
            if jar.is_file():
                jar_stat = jar.stat()
                digest.update(f"{jar}:{jar_stat.st_size}:{jar_stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def archive_flags(
    *,
    cache_dir: Path,
    service: str,
    java: Path,
    base_flags: list[str],
    classpath: str,
    roots: Iterable[Path],
    owner: str | None,
) -> list[str]:
    """The flags that use this JVM's archive, or have the JVM dump one at exit when there is none.

    ``base_flags`` are the JVM's other flags (they go into the key); ``roots`` the class path and
    plugin directories whose jars the archive is made of; ``owner`` the account the JVM runs as,
    which must be able to write the dump."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        shutil.chown(cache_dir, user=owner, group=owner)
    key = archive_key(java, [*base_flags, classpath], roots)
    archive = cache_dir / f"{service}-{key}.jsa"
    dump = cache_dir / f"{service}-{key}.dump.jsa"
    if not archive.exists() and dump.exists():
        if _usable(java, base_flags, classpath, dump):
            dump.replace(archive)
        else:
            dump.unlink()
    mine = re.compile(rf"{re.escape(service)}-([0-9a-f]{{16}})(\.dump)?\.jsa")
    for other in cache_dir.iterdir():
        match = mine.fullmatch(other.name)
        if match and match.group(1) != key:
            other.unlink(missing_ok=True)  # made for jars or a JDK that are gone
    if archive.exists():
        return [*AGENT_FLAGS, *QUIET_FLAGS, f"-XX:SharedArchiveFile={archive}"]
    return [*AGENT_FLAGS, *QUIET_FLAGS, f"-XX:ArchiveClassesAtExit={dump}"]


def _usable(java: Path, base_flags: list[str], classpath: str, archive: Path) -> bool:
    """The JVM maps the archive for this class path (``-Xshare:on`` fails rather than ignore it)."""
    try:
        result = subprocess.run(
            # a cut-short dump crashes the check's JVM (SIGBUS while mapping it): no crash report
            [str(java), *base_flags, *AGENT_FLAGS, "-Xshare:on", f"-XX:SharedArchiveFile={archive}",
             "-XX:ErrorFile=/dev/null", "-XX:-CreateCoredumpOnCrash", "-cp", classpath, "-version"],
            capture_output=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0
