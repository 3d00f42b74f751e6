"""Building the platform's Debezium converter (``connect-plugins/cdc-platform-converters``) for the stack.

The converter is Java source in this repository. The stack compiles it with ``javac`` against the
Debezium API and Connect API jars that ship inside the PostgreSQL plugin, packs it as a jar, and
drops a copy into every source plugin directory (Kafka Connect isolates plugins, so a converter
must sit beside the connector that loads it). A marker holding the sources' hash makes a warm
``up`` skip the build, and tells ``up`` when a running Connect worker has a stale copy.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from cdc_platform.settings import DEBEZIUM_VERSION, KAFKA_VERSION, StackSettings
from cdc_platform.stack.downloads import plugins_dir
from cdc_platform.stack.errors import StackError

#: the plugin directories whose connectors load the converter
SOURCE_PLUGINS = ("debezium-connector-postgres", "debezium-connector-mysql", "debezium-connector-mariadb")
JAR_NAME = "cdc-platform-converters.jar"
MARKER_NAME = ".cdc-platform-converters"


def sources_dir(settings: StackSettings) -> Path:
    return settings.project_root / "connect-plugins" / "cdc-platform-converters" / "src" / "main" / "java"


def sources_hash(settings: StackSettings) -> str:
    digest = hashlib.sha256()
    for path in sorted(sources_dir(settings).rglob("*.java")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def converters_current(settings: StackSettings) -> bool:
    """True when every source plugin directory holds the jar built from today's sources."""
    wanted = sources_hash(settings)
    for plugin in SOURCE_PLUGINS:
        marker = plugins_dir(settings) / plugin / MARKER_NAME
        if not marker.exists() or marker.read_text().strip() != wanted:
            return False
    return True


def ensure_converters(settings: StackSettings, javac: Path, echo=print) -> bool:
    """Build and install the converter jar when its sources changed; True when it was (re)installed."""
    if converters_current(settings):
        return False
    sources = sorted(sources_dir(settings).rglob("*.java"))
    if not sources:
        raise StackError(f"No converter sources under {sources_dir(settings)}")
    api_dir = plugins_dir(settings) / "debezium-connector-postgres"
    classpath = [
        api_dir / f"debezium-api-{DEBEZIUM_VERSION}.jar",
        api_dir / f"connect-api-{KAFKA_VERSION}.jar",
        api_dir / "slf4j-api-1.7.36.jar",  # the logging API every Debezium plugin ships
    ]
    missing = [str(p) for p in classpath if not p.exists()]
    if missing:
        raise StackError(f"Cannot build the converter: missing {', '.join(missing)}")
    echo("Building the cdc-platform Debezium converter ...")
    with tempfile.TemporaryDirectory(prefix="cdc-converters-") as work:
        classes = Path(work) / "classes"
        result = subprocess.run(
            [str(javac), "--release", "17", "-nowarn", "-encoding", "UTF-8", "-d", str(classes),
             "-cp", ":".join(str(p) for p in classpath), *map(str, sources)],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"javac failed on the converter sources:\n{result.stdout}{result.stderr}")
        jar = Path(work) / JAR_NAME
        with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: cdc-platform\n")
            for path in sorted(classes.rglob("*.class")):
                archive.write(path, path.relative_to(classes).as_posix())
        wanted = sources_hash(settings)
        for plugin in SOURCE_PLUGINS:
            target = plugins_dir(settings) / plugin
            shutil.copyfile(jar, target / JAR_NAME)
            (target / MARKER_NAME).write_text(wanted)
    return True
