"""Building the platform's two Kafka Connect plugin jars for the stack.

Both are Java source in this repository (``connect-plugins/``). The stack compiles each with
``javac`` against the jars of the Debezium plugin it extends, packs it with its resources (a
``META-INF/services`` manifest, which the worker's ``plugin.discovery=service_load`` reads), and
drops a copy into each plugin directory that must load it (Kafka Connect isolates plugins, so a
class must sit beside the connector that uses it):

- ``cdc-platform-converters``: the exact-value converter, beside the source connectors;
- ``cdc-platform-sink``: Debezium's JDBC sink whose tasks reconnect after a lost connection
  (``ResilientJdbcSinkConnector``) and the sinks' JSON converter that parses each schema once
  (``SchemaCachingJsonConverter``), beside Debezium's JDBC sink.

A marker holding the sources' hash makes a warm ``up`` skip the build, and tells ``up`` when a
running Connect worker has a stale copy.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cdc_platform.settings import DEBEZIUM_VERSION, KAFKA_VERSION, StackSettings
from cdc_platform.stack.downloads import kafka_libs_dir, plugins_dir
from cdc_platform.stack.errors import StackError


@dataclass(frozen=True)
class PluginJar:
    #: the project under connect-plugins/, and the jar's name in each plugin directory
    project: str
    #: the Debezium plugin directories the jar is copied into
    targets: tuple[str, ...]
    #: the plugin directory whose jars it compiles against, and which of them (None: all)
    api_plugin: str
    api_jars: tuple[str, ...] | None
    #: jars of Kafka's own libs it compiles against too (the worker's class path provides them)
    worker_jars: tuple[str, ...] = ()

    @property
    def jar_name(self) -> str:
        return f"{self.project}.jar"

    @property
    def marker_name(self) -> str:
        return f".{self.project}"

    def root(self, settings: StackSettings) -> Path:
        return settings.project_root / "connect-plugins" / self.project / "src" / "main"

    def sources(self, settings: StackSettings) -> list[Path]:
        return sorted((self.root(settings) / "java").rglob("*.java"))

    def resources(self, settings: StackSettings) -> list[Path]:
        folder = self.root(settings) / "resources"
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []

    def sources_hash(self, settings: StackSettings) -> str:
        digest = hashlib.sha256()
        for path in [*self.sources(settings), *self.resources(settings)]:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    def classpath(self, settings: StackSettings) -> list[Path]:
        folder = plugins_dir(settings) / self.api_plugin
        worker = [kafka_libs_dir(settings) / name for name in self.worker_jars]
        if self.api_jars is None:
            return [*sorted(folder.glob("*.jar")), *worker]
        return [*(folder / name for name in self.api_jars), *worker]


CONVERTERS = PluginJar(
    project="cdc-platform-converters",
    targets=("debezium-connector-postgres", "debezium-connector-mysql", "debezium-connector-mariadb"),
    api_plugin="debezium-connector-postgres",
    api_jars=(
        f"debezium-api-{DEBEZIUM_VERSION}.jar",
        f"connect-api-{KAFKA_VERSION}.jar",
        "slf4j-api-1.7.36.jar",
    ),  # fmt: skip
)
SINK = PluginJar(
    project="cdc-platform-sink",
    targets=("debezium-connector-jdbc",),
    api_plugin="debezium-connector-jdbc",
    api_jars=None,  # it extends Debezium's JDBC sink, whose classes reach into the whole plugin
    # SchemaCachingJsonConverter extends Kafka's JsonConverter
    worker_jars=(
        f"connect-json-{KAFKA_VERSION}.jar",
        "jackson-core-2.19.0.jar",
        "jackson-databind-2.19.0.jar",
    ),
)
PLUGIN_JARS = (CONVERTERS, SINK)


def _current(settings: StackSettings, plugin: PluginJar) -> bool:
    wanted = plugin.sources_hash(settings)
    for target in plugin.targets:
        marker = plugins_dir(settings) / target / plugin.marker_name
        if not marker.exists() or marker.read_text().strip() != wanted:
            return False
    return True


def converters_current(settings: StackSettings) -> bool:
    """True when every plugin directory holds the jars built from today's sources."""
    return all(_current(settings, plugin) for plugin in PLUGIN_JARS)


def _build(settings: StackSettings, plugin: PluginJar, javac: Path) -> None:
    sources = plugin.sources(settings)
    if not sources:
        raise StackError(f"No Java sources under {plugin.root(settings) / 'java'}")
    classpath = plugin.classpath(settings)
    missing = [str(p) for p in classpath if not p.exists()]
    if missing or not classpath:
        raise StackError(f"Cannot build {plugin.project}: missing {', '.join(missing) or 'its API jars'}")
    with tempfile.TemporaryDirectory(prefix=f"{plugin.project}-") as work:
        classes = Path(work) / "classes"
        result = subprocess.run(
            [str(javac), "--release", "17", "-nowarn", "-encoding", "UTF-8", "-d", str(classes),
             "-cp", ":".join(str(p) for p in classpath), *map(str, sources)],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise StackError(f"javac failed on the {plugin.project} sources:\n{result.stdout}{result.stderr}")
        jar = Path(work) / plugin.jar_name
        resources = plugin.root(settings) / "resources"
        with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: cdc-platform\n")
            for path in sorted(classes.rglob("*.class")):
                archive.write(path, path.relative_to(classes).as_posix())
            for path in plugin.resources(settings):
                archive.write(path, path.relative_to(resources).as_posix())
        wanted = plugin.sources_hash(settings)
        for target in plugin.targets:
            folder = plugins_dir(settings) / target
            shutil.copyfile(jar, folder / plugin.jar_name)
            (folder / plugin.marker_name).write_text(wanted)


def ensure_converters(settings: StackSettings, javac: Path, echo=print) -> bool:
    """Build and install the jars whose sources changed; True when any was (re)installed."""
    changed = False
    for plugin in PLUGIN_JARS:
        if _current(settings, plugin):
            continue
        echo(f"Building the platform's Connect plugin {plugin.project} ...")
        _build(settings, plugin, javac)
        changed = True
    return changed
