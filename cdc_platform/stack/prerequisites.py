"""Finding (and, as root, installing) the programs the stack runs: PostgreSQL, MariaDB, Java, Maven."""

from __future__ import annotations

import ctypes.util
import hashlib
import importlib.util
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cdc_platform.stack.errors import StackError
from cdc_platform.stack.processes import PidFile

#: Debian package -> why the stack needs it
DEBIAN_PACKAGES = {
    "postgresql": "PostgreSQL server binaries (initdb, postgres)",
    "mariadb-server": "MariaDB server (mariadbd, mariadb-install-db)",
    "mariadb-client": "MariaDB command-line client",
    "openjdk-17-jdk-headless": "Java 17+ for Kafka and Kafka Connect, and javac for the platform's converter",
    "maven": "Maven, to fetch Kafka and Debezium from Maven Central",
    "unixodbc": "the ODBC driver manager pyodbc loads (libodbc), for SQL Server connections",
    "tdsodbc": "FreeTDS's ODBC driver for SQL Server (registered as 'FreeTDS')",
}

#: Unprivileged account the databases run under when the stack is started as root
#: (PostgreSQL refuses to run as root).
SERVICE_USER = "cdcstack"


@dataclass(frozen=True)
class Binaries:
    pg_bin: Path
    mariadbd: Path
    mariadb_install_db: Path
    java: Path
    javac: Path
    mvn: Path


def _postgres_bin() -> Path | None:
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*/bin") if (p / "postgres").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


def _which(*names: str) -> Path | None:
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
        if found:
            return Path(found)
    return None


def _java_major(java: Path) -> int:
    out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    for token in out.replace('"', " ").split():
        head = token.split(".")[0]
        if head.isdigit() and ("." in token or token.isdigit()):
            return int(head)
    return 0


def _find() -> tuple[dict[str, Path | None], list[str]]:
    found = {
        "pg_bin": _postgres_bin(),
        "mariadbd": _which("mariadbd", "mysqld"),
        "mariadb_install_db": _which("mariadb-install-db", "mysql_install_db"),
        "java": _which("java"),
        "javac": _which("javac"),
        "mvn": _which("mvn"),
    }
    missing = []
    if found["pg_bin"] is None:
        missing.append("postgresql")
    if found["mariadbd"] is None or found["mariadb_install_db"] is None:
        missing += ["mariadb-server", "mariadb-client"]
    if found["java"] is None or found["javac"] is None or _java_major(found["java"]) < 17:
        missing.append("openjdk-17-jdk-headless")
    if found["mvn"] is None:
        missing.append("maven")
    missing += _missing_odbc()
    return found, missing


def _missing_odbc() -> list[str]:
    """SQL Server is reached through pyodbc: unixODBC's libodbc and a registered FreeTDS driver."""

    if ctypes.util.find_library("odbc") is None:
        return ["unixodbc", "tdsodbc"]
    odbcinst = Path("/etc/odbcinst.ini")
    registered = odbcinst.exists() and "[FreeTDS]" in odbcinst.read_text(errors="replace")
    return [] if registered else ["tdsodbc"]


def ensure_production_binaries(echo=print) -> None:
    """The production profile's proxy: Debian's nginx, installed (as root) without starting the
    distribution's own nginx service, which would take port 80."""
    if _which("nginx") is not None:
        return
    if os.geteuid() != 0:
        raise StackError("The production profile needs nginx: sudo apt-get install -y nginx")
    echo("Installing Debian package: nginx")
    guard = Path("/usr/sbin/policy-rc.d")
    existed = guard.exists()
    if not existed:
        guard.write_text("#!/bin/sh\n# cdc-platform: install nginx without starting it\nexit 101\n")
        guard.chmod(0o755)
    try:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx"]):
            result = subprocess.run(step, capture_output=True, text=True, env=env)
            if result.returncode != 0:
                raise StackError(
                    f"`{' '.join(step)}` failed (exit {result.returncode}):\n{result.stderr[-2000:]}"
                )
    finally:
        if not existed:
            guard.unlink(missing_ok=True)


def check_python_extras() -> None:
    """The stack's Python parts are an extra (``cdc-platform[stack]``): say so before starting anything."""

    missing = [name for name in ("moto", "cryptography") if importlib.util.find_spec(name) is None]
    if missing:
        raise StackError(
            f"The local stack needs the Python packages {', '.join(missing)}: pip install 'cdc-platform[stack]' "
            "(or `make install`, which installs the test extra that includes it)."
        )


def ensure_binaries(echo=print) -> Binaries:
    """Locate the programs; as root install missing Debian packages, otherwise say which to install."""
    found, missing = _find()
    if missing:
        listing = "\n".join(f"  {name:26} {DEBIAN_PACKAGES[name]}" for name in missing)
        if os.geteuid() != 0:
            raise StackError(
                "The local stack needs these Debian packages, which are not installed:\n"
                f"{listing}\nInstall them with: sudo apt-get install -y {' '.join(missing)}"
            )
        echo(f"Installing Debian packages: {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
            result = subprocess.run(step, capture_output=True, text=True, env=env)
            if result.returncode != 0:
                raise StackError(
                    f"`{' '.join(step)}` failed (exit {result.returncode}); could Debian's package "
                    f"archive be reached? Output:\n{(result.stdout + result.stderr)[-2000:]}"
                )
        found, missing = _find()
        if missing:
            raise StackError(f"Still missing after apt-get install: {', '.join(missing)}")
    return Binaries(**{k: v for k, v in found.items() if v is not None})  # type: ignore[arg-type]


def service_user() -> str | None:
    """The account to run the databases as: None when we are not root, else a dedicated user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise StackError(
                f"Could not create the service user {SERVICE_USER}: {result.stderr.strip()}"
            ) from None
    return SERVICE_USER


def chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    shutil.chown(path, user=user, group=user)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            shutil.chown(os.path.join(dirpath, name), user=user, group=user)


def traversable_by_others(path: Path) -> bool:
    """True when any account can reach ``path`` (every ancestor has the others-execute bit)."""
    for part in [path, *path.parents]:
        try:
            if not part.stat().st_mode & 0o001:
                return False
        except FileNotFoundError:
            continue
    return True


#: where stack files go when the checkout sits in a directory the service user cannot enter
PRIVATE_CHECKOUT_HOME = Path("/var/lib/cdc-platform")


def reachable_state_dir(state_dir: Path, user: str | None, home: Path = PRIVATE_CHECKOUT_HOME) -> Path:
    """The state dir the service user can read, moving a private one out of a private checkout.

    Kafka and Connect run as the service user, and they read the jars, plugins, configs and the
    secrets file under the state dir. A checkout under ``/root`` (0700) hides all of it, so the
    state dir moves to ``<home>/state-<hash>`` and ``.stack`` becomes a link there; every later
    ``load_stack_settings`` resolves the link, so paths written into connector configs are ones the
    worker can open. Moving needs the stack stopped: a running database cannot change directory.
    """
    if user is None or traversable_by_others(state_dir):
        return state_dir

    target = home / f"state-{hashlib.sha1(str(state_dir).encode()).hexdigest()[:12]}"
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    if state_dir.exists():
        running = [p.stem for p in (state_dir / "run").glob("*.pid") if PidFile(p).running_pid()]
        if running:
            raise StackError(
                f"{state_dir} is in a directory the service user {user} cannot enter and must move to "
                f"{target}, but the stack still records running services ({', '.join(sorted(running))}). "
                "Run `cdc-platform stack down` first."
            )
        if target.exists() and any(target.iterdir()):
            raise StackError(f"Cannot move {state_dir} to {target}: the target is not empty.")
        target.rmdir() if target.exists() else None
        shutil.move(str(state_dir), str(target))
    else:
        target.mkdir(exist_ok=True)
        state_dir.parent.mkdir(parents=True, exist_ok=True)
    target.chmod(0o755)
    state_dir.symlink_to(target, target_is_directory=True)
    return target


def share_with_service_user(path: Path, user: str | None) -> None:
    """Let the service user read ``path`` (and enter its directory) through its group, nobody else."""
    if user is None:
        return
    shutil.chown(path.parent, group=user)
    path.parent.chmod(0o750)
    shutil.chown(path, group=user)
    path.chmod(0o640)


def database_root(state_dir: Path, user: str | None, home: Path = PRIVATE_CHECKOUT_HOME) -> Path:
    """Where the databases keep their files: the state dir, unless the service user cannot reach it.

    A checkout under a private home (``/root`` is 0700) is unreachable for the unprivileged account
    PostgreSQL must run as; then the database files go to ``/var/lib/cdc-platform/<hash>`` and
    ``<state>/dbroot`` links there, so ``stack reset`` still finds and removes them.
    """
    link = state_dir / "dbroot"
    if link.is_symlink():  # placed by an earlier start; the state dir may have moved since
        return link.resolve()
    if user is None or traversable_by_others(state_dir):
        return state_dir

    root = home / hashlib.sha1(str(state_dir).encode()).hexdigest()[:12]
    root.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        state_dir.mkdir(parents=True, exist_ok=True)
        link.symlink_to(root)
    return root
