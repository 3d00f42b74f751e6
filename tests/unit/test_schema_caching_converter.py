"""The sinks' SchemaCachingJsonConverter, compiled and run by a real JDK against Kafka's own
JsonConverter: every record converts to what JsonConverter makes of it (schemas with braces,
quotes and escapes in names and values, decimals, timestamps, arrays, maps, bytes, nulls,
defaults, a schema that widens), forms it never writes fall back to JsonConverter whole, and
repeated schemas are served from the cache."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cdc_platform.settings import load_stack_settings
from cdc_platform.stack.converters import SINK
from cdc_platform.stack.downloads import kafka_libs_dir

ROOT = Path(__file__).resolve().parents[2]
JAVA, JAVAC = shutil.which("java"), shutil.which("javac")


def test_the_caching_converter_converts_every_record_as_kafkas_json_converter(tmp_path):
    if not (JAVA and JAVAC):
        pytest.fail("this test needs a JDK (java, javac) on PATH, as `stack up` does")
    settings = load_stack_settings()
    classpath = SINK.classpath(settings)
    missing = [str(p) for p in classpath if not p.exists()]
    assert not missing, (
        f"the stack's Kafka and Debezium downloads are missing (cdc-platform stack up): {missing}"
    )
    sources = [*SINK.sources(settings), ROOT / "tests/unit/java/SchemaCachingJsonConverterCheck.java"]
    compile_path = ":".join(map(str, classpath))
    subprocess.run(
        [JAVAC, "-nowarn", "-d", str(tmp_path), "-cp", compile_path, *map(str, sources)], check=True
    )
    run_path = f"{tmp_path}:{compile_path}:{kafka_libs_dir(settings)}/*"
    done = subprocess.run(
        [JAVA, "-cp", run_path, "SchemaCachingJsonConverterCheck"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # 20 records compared; 3 schemas cached (the envelope, a widened envelope, a bare int64), 14 hits:
    # the 10 and 5 records of the two envelopes and the second bare int64, each but the first
    assert done.stdout.split() == ["checked", "20", "schemas", "3", "hits", "14"]
