"""Fetching Kafka, Kafka Connect and the Debezium plugins from Maven Central, cached.

Maven keeps its own cache in ``~/.m2``; the unpacked result goes under the stack's cache directory
with a marker file naming the version, so a warm ``up`` does no Maven call at all.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from cdc_platform.settings import DEBEZIUM_VERSION, JOLOKIA_VERSION, KAFKA_VERSION, StackSettings
from cdc_platform.stack.errors import StackError

#: plugin directory name -> Maven artifactId of its ``plugin`` tar.gz
DEBEZIUM_PLUGINS = {
    "debezium-connector-postgres": "debezium-connector-postgres",
    "debezium-connector-mysql": "debezium-connector-mysql",
    "debezium-connector-mariadb": "debezium-connector-mariadb",
    "debezium-connector-sqlserver": "debezium-connector-sqlserver",
    "debezium-connector-jdbc": "debezium-connector-jdbc",
}
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


def kafka_libs_dir(settings: StackSettings) -> Path:
    return settings.cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"


def plugins_dir(settings: StackSettings) -> Path:
    return settings.cache_dir / f"debezium-{DEBEZIUM_VERSION}" / "plugins"


def _run_maven(mvn: Path, args: list[str], what: str, cwd: Path) -> None:
    # cwd matters: the dependency plugin writes "already unpacked" markers under ./target
    result = subprocess.run([str(mvn), "-B", "-q", *args], capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        unreachable = any(s in output for s in ("Could not transfer", "UnknownHost", "Connection refused"))
        reason = (
            "Maven Central could not be reached"
            if unreachable
            else "Maven could not resolve it (is the registry reachable and the version published?)"
        )
        raise StackError(f"Fetching {what} failed: {reason}. Maven said:\n{output[-2500:]}")


def ensure_kafka(settings: StackSettings, mvn: Path, echo=print) -> Path:
    libs = kafka_libs_dir(settings)
    marker = libs / ".complete"
    if marker.exists():
        return libs
    echo(f"Fetching Kafka {KAFKA_VERSION} and Kafka Connect jars from Maven Central ...")
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    pom = settings.project_root / "resources" / "stack" / "kafka-pom.xml"
    if not pom.exists():
        raise StackError(f"Missing {pom}: the stack's Maven descriptor for Kafka.")
    _run_maven(
        mvn,
        [
            "-f",
            str(pom),
            f"-Dkafka.version={KAFKA_VERSION}",
            "dependency:copy-dependencies",
            # compile scope would drop Jetty/Jersey and Connect's REST server would not start
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ],
        f"Kafka {KAFKA_VERSION} (org.apache.kafka:kafka_2.13, connect-runtime)",
        settings.cache_dir,
    )
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    marker.write_text(KAFKA_VERSION)
    return libs


def ensure_debezium_plugins(settings: StackSettings, mvn: Path, echo=print) -> Path:
    root = plugins_dir(settings)
    for directory, artifact in DEBEZIUM_PLUGINS.items():
        target = root / directory
        if (target / ".complete").exists():
            continue
        coordinate = f"io.debezium:{artifact}:{DEBEZIUM_VERSION}:tar.gz:plugin"
        echo(f"Fetching {coordinate} from Maven Central ...")
        staging = root / f".{directory}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(f"{staging}.markers", ignore_errors=True)
        _run_maven(
            mvn,
            [
                f"{DEPENDENCY_PLUGIN}:unpack",
                f"-Dartifact={coordinate}",
                f"-DoutputDirectory={staging}",
                # per-unpack markers: shared ones would make a later unpack silently skip
                f"-DmarkersDirectory={staging}.markers",
            ],
            coordinate,
            settings.cache_dir,
        )
        # The archive holds one top-level directory named after the artifact.
        unpacked = staging / artifact
        if not unpacked.is_dir():
            raise StackError(f"{coordinate} did not unpack to {unpacked}; found {list(staging.iterdir())}")
        shutil.rmtree(target, ignore_errors=True)
        unpacked.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(f"{staging}.markers", ignore_errors=True)
        (target / ".complete").write_text(DEBEZIUM_VERSION)
    return root


def jolokia_agent_jar(settings: StackSettings) -> Path:
    return (
        settings.cache_dir
        / f"jolokia-{JOLOKIA_VERSION}"
        / f"jolokia-agent-jvm-{JOLOKIA_VERSION}-javaagent.jar"
    )


def ensure_jolokia(settings: StackSettings, mvn: Path, echo=print) -> Path:
    """Jolokia's JVM agent: Connect starts with it so Debezium's MBeans can be read over HTTP."""
    jar = jolokia_agent_jar(settings)
    if jar.exists():
        return jar
    coordinate = f"org.jolokia:jolokia-agent-jvm:{JOLOKIA_VERSION}:jar:javaagent"
    echo(f"Fetching {coordinate} from Maven Central ...")
    staging = jar.parent.with_name(jar.parent.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    _run_maven(mvn, [f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={coordinate}", f"-DoutputDirectory={staging}"],
               coordinate, settings.cache_dir)  # fmt: skip
    shutil.rmtree(jar.parent, ignore_errors=True)
    staging.rename(jar.parent)
    return jar
