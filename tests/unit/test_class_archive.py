"""The stack JVMs' class-data-sharing archives, made and used by a real JDK: dumped at a clean exit,
checked before use, thrown away when cut short or made for other jars."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cdc_platform.stack.class_archive import archive_flags

JAVA = shutil.which("java")
JAVAC = shutil.which("javac")
JAR = shutil.which("jar")


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A one-class application jar, as the stack's class path is made of jars."""
    if not (JAVA and JAVAC and JAR):
        pytest.fail("the class-archive tests need a JDK (java, javac, jar) on PATH, as `stack up` does")
    src = tmp_path / "src"
    src.mkdir()
    (src / "Hello.java").write_text(
        'public class Hello { public static void main(String[] a) { System.out.println("hi"); } }\n'
    )
    subprocess.run([JAVAC, "-d", str(src), str(src / "Hello.java")], check=True)
    jar = tmp_path / "lib" / "hello.jar"
    jar.parent.mkdir()
    subprocess.run([JAR, "cf", str(jar), "-C", str(src), "Hello.class"], check=True)
    return jar


BASE = ["-Xmx64m", "-XX:+UseSerialGC"]


def flags_for(app: Path, cache: Path, service: str = "connect") -> list[str]:
    return archive_flags(cache_dir=cache, service=service, java=Path(JAVA), base_flags=BASE,
                         classpath=str(app), roots=(app.parent,), owner=None)  # fmt: skip


def run(app: Path, flags: list[str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([JAVA, *BASE, *flags, *extra, "-cp", str(app), "Hello"],
                          capture_output=True, text=True, check=True)  # fmt: skip


def test_a_clean_exit_dumps_the_archive_and_the_next_start_loads_classes_from_it(
    app: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "archives"
    first = flags_for(app, cache)
    dump = next(f.split("=", 1)[1] for f in first if f.startswith("-XX:ArchiveClassesAtExit="))
    assert not any(f.startswith("-XX:SharedArchiveFile=") for f in first)
    run(app, first)
    assert Path(dump).is_file(), "the JVM dumped no archive at its exit"

    second = flags_for(app, cache)
    archive = next(f.split("=", 1)[1] for f in second if f.startswith("-XX:SharedArchiveFile="))
    assert Path(archive).is_file() and not Path(dump).exists(), "the checked dump became the archive"
    loaded = run(app, second, "-Xlog:class+load=info").stdout
    assert "Hello source: shared objects file (top)" in loaded, loaded[-2000:]
    # the archive stays in use: nothing is dumped again
    assert flags_for(app, cache) == second


def test_a_dump_cut_short_is_thrown_away_and_dumped_again(app: Path, tmp_path: Path) -> None:
    cache = tmp_path / "archives"
    first = flags_for(app, cache)
    dump = Path(next(f.split("=", 1)[1] for f in first if f.startswith("-XX:ArchiveClassesAtExit=")))
    run(app, first)
    with open(dump, "r+b") as cut:  # what a stop's SIGKILL in the middle of the write leaves
        cut.truncate(dump.stat().st_size // 3)
    again = flags_for(app, cache)
    assert again == first, "a broken dump must not be used"
    assert not dump.exists()


def test_new_jars_make_a_new_archive_and_the_old_one_goes(app: Path, tmp_path: Path) -> None:
    cache = tmp_path / "archives"
    run(app, flags_for(app, cache))
    used = flags_for(app, cache)
    old = Path(next(f.split("=", 1)[1] for f in used if f.startswith("-XX:SharedArchiveFile=")))
    other_service = cache / "kafka-0123456789abcdef.jsa"
    other_service.write_bytes(b"another JVM's archive")
    worker_two = cache / "connect-2-0123456789abcdef.jsa"
    worker_two.write_bytes(b"the second worker's archive")

    stat = app.stat()
    os.utime(app, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a new Debezium, say
    fresh = flags_for(app, cache)
    assert any(f.startswith("-XX:ArchiveClassesAtExit=") for f in fresh)
    assert not old.exists(), "an archive made for other jars is never used and is removed"
    assert other_service.exists() and worker_two.exists(), "other JVMs' archives are theirs"
