"""``up``, ``down``, ``status``, ``reset``: the stack as a whole.

``up`` checks every port before it fetches or starts anything, so a port held by another program
fails at once and leaves nothing half-started.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from cdc_platform.settings import (
    PROFILE_FILE_NAME,
    PROFILES,
    StackSettings,
    ensure_stack_secrets,
    load_stack_settings,
    port_variable,
)
from cdc_platform.stack.converters import converters_current, ensure_converters
from cdc_platform.stack.downloads import ensure_debezium_plugins, ensure_jolokia, ensure_kafka
from cdc_platform.stack.errors import StackError
from cdc_platform.stack.prerequisites import (
    check_python_extras,
    ensure_binaries,
    ensure_production_binaries,
    reachable_state_dir,
    service_user,
    share_with_service_user,
)
from cdc_platform.stack.processes import port_in_use, spawn, stop, wait_until
from cdc_platform.stack.production import Auth, oauth2_proxy_binary, production_services, require_admin
from cdc_platform.stack.services import Connect, Service, all_services


def stack_services(settings: StackSettings, binaries=None, user: str | None = None) -> list[Service]:
    """Every service of the settings' profile, in start order."""
    services = all_services(settings, binaries, user)
    return services + production_services(settings) if settings.production else services


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # running | stopped
    #: the service's own readiness probe, asked now: ok | not ready | - (stopped)
    health: str
    host: str
    port: int
    url: str | None
    pid: int | None
    log: str

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "state": self.state,
            "health": self.health,
            "host": self.host,
            "port": self.port,
            "url": self.url,
            "pid": self.pid,
            "log": self.log,
        }


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int] | None:
    """The kernel's range of local ports for outgoing connections, or None where it cannot be read."""
    try:
        low, high = path.read_text().split()[:2]
        return int(low), int(high)
    except (OSError, ValueError):
        return None


def check_not_ephemeral(ports: dict[str, int], port_range: tuple[int, int] | None) -> None:
    """A listening port inside the ephemeral range can be taken first by any outgoing connection
    (a finished one sits in TIME-WAIT on it), so ``up`` would fail at random: refuse such a port."""
    if port_range is None:
        return
    low, high = port_range
    inside = [
        f"{port} ({name}, {port_variable(name)})" for name, port in ports.items() if low <= port <= high
    ]
    if inside:
        raise StackError(
            f"Cannot start the local stack: port(s) {', '.join(inside)} lie in the kernel's ephemeral port range "
            f"{low}-{high} (/proc/sys/net/ipv4/ip_local_port_range), where any outgoing connection can take "
            f"them first. Set the named variable(s) to a port below {low} or above {high}."
        )


def _check_ports(settings: StackSettings, services: list[Service]) -> None:
    check_not_ephemeral({n: p for s in services for n, p in s.ports.items()}, ephemeral_range())
    busy = []
    for service in services:
        if service.pid_file.running_pid() is not None:
            continue
        for port_name, port in service.ports.items():
            if port_in_use(settings.host, port):
                variable = port_variable(port_name)
                busy.append(
                    f"port {port} ({port_name}) is already in use by another program; set {variable} to move it"
                )
    if busy:
        raise StackError("Cannot start the local stack: " + "; ".join(busy) + ".")


def record_profile(settings: StackSettings, profile: str | None) -> StackSettings:
    """Switch the state dir to ``profile`` (None keeps the recorded one); the settings that follow."""
    if profile is None or profile == settings.profile:
        return settings
    if profile not in PROFILES:
        raise StackError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if profile == "production":
        require_admin(settings)
    running = [s.name for s in stack_services(settings) if s.pid_file.running_pid() is not None]
    if running and settings.production:
        raise StackError(
            f"The stack runs the {settings.profile} profile ({', '.join(running)}): "
            "`cdc-platform stack down` first, then start the other profile."
        )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    (settings.state_dir / PROFILE_FILE_NAME).write_text(profile + "\n")
    return dataclasses.replace(load_stack_settings(), state_dir=settings.state_dir)


def _runs_as_configured(service) -> bool:
    pid = service.pid_file.running_pid()
    return pid is not None and service.runs_as_configured(pid)


def up(settings: StackSettings, echo=print, profile: str | None = None) -> list[ServiceStatus]:
    started_at = time.monotonic()
    settings = record_profile(settings, profile)
    if settings.production:
        require_admin(settings)
    skeleton = stack_services(settings)
    if all(_runs_as_configured(s) for s in skeleton) and converters_current(settings):
        try:
            if all(s.ready() for s in skeleton):
                echo("The local stack is already running.")
                return status(settings)
        except Exception:  # noqa: BLE001 - a failed probe means we go through the full start path
            pass
    _check_ports(settings, skeleton)

    check_python_extras()
    binaries = ensure_binaries(echo)
    user = service_user()
    state_dir = reachable_state_dir(settings.state_dir, user)
    if state_dir != settings.state_dir:
        echo(f"The checkout is private to its owner: the stack's files live in {state_dir}.")
        settings = dataclasses.replace(settings, state_dir=state_dir)
    for path in (
        settings.logs_dir,
        settings.run_dir,
        settings.data_dir,
        settings.config_dir,
        settings.cache_dir,
    ):
        path.mkdir(parents=True, exist_ok=True)
    ensure_stack_secrets(settings)
    share_with_service_user(settings.secrets_file, user)
    ensure_kafka(settings, binaries.mvn, echo)
    ensure_debezium_plugins(settings, binaries.mvn, echo)
    ensure_jolokia(settings, binaries.mvn, echo)
    converters_changed = ensure_converters(settings, binaries.javac, echo)
    services = stack_services(settings, binaries, user)
    if settings.production:
        ensure_production_binaries(echo)
        auth = next(s for s in services if isinstance(s, Auth))
        auth.binary = oauth2_proxy_binary(settings, echo)

    for service in services:
        if isinstance(service, Connect) and converters_changed and stop(service.pid_file):
            echo("  connect   restarting: the converter was rebuilt")
        elif (
            isinstance(service, Connect)
            and service.pid_file.running_pid() is not None
            and not _agent_up(service)
        ):
            stop(service.pid_file)
            echo(
                "  connect   restarting: it runs without the Jolokia metrics agent (started by an older version)"
            )
        running = service.pid_file.running_pid()
        if running is not None and not service.runs_as_configured(running) and stop(service.pid_file):
            echo(f"  {service.name:9} restarting: another server than the settings ask for was running")
        if service.pid_file.running_pid() is not None:
            wait_until(service.ready, service=service.name, timeout=service.timeout,
                       log_file=service.log_file, pid_file=service.pid_file)  # fmt: skip
            service.after_start()
            echo(f"  {service.name:9} already running")
            continue
        t0 = time.monotonic()
        service.prepare()
        spawn(
            service.command(),
            log_file=service.log_file,
            pid_file=service.pid_file,
            env=service.environment(),
            cwd=service.working_directory(),
            user=service.run_as(),
        )
        wait_until(service.ready, service=service.name, timeout=service.timeout,
                   log_file=service.log_file, pid_file=service.pid_file)  # fmt: skip
        service.after_start()
        echo(f"  {service.name:9} ready in {time.monotonic() - t0:5.1f} s  ({service.url or service.port})")
    echo(f"The local stack is up ({time.monotonic() - started_at:.1f} s), profile {settings.profile}.")
    if settings.production:
        proxy = next(s for s in services if s.name == "proxy")
        echo(f"Sign in at {proxy.url}/ (certificate: {settings.config_dir / 'proxy.crt'}).")
    return status(settings)


def down(settings: StackSettings, echo=print) -> None:
    for service in reversed(stack_services(settings)):
        if stop(service.pid_file):
            echo(f"  {service.name:9} stopped")
        else:
            echo(f"  {service.name:9} was not running")


def status(settings: StackSettings) -> list[ServiceStatus]:
    rows = []
    for service in stack_services(settings):
        pid = service.pid_file.running_pid()
        rows.append(
            ServiceStatus(
                name=service.name,
                state="running" if pid is not None else "stopped",
                health="-" if pid is None else _health(service),
                host=settings.host,
                port=service.port,
                url=service.url,
                pid=pid,
                log=str(service.log_file),
            )
        )
    return rows


def _health(service: Service) -> str:
    try:
        return "ok" if service.ready() else "not ready"
    except Exception as exc:  # noqa: BLE001 - a failing probe is the answer, with its reason
        return f"not ready ({type(exc).__name__})"


def reset(settings: StackSettings, echo=print) -> None:
    """Stop everything and delete data, logs and generated config; keep downloads."""
    down(settings, echo)
    dbroot = settings.state_dir / "dbroot"
    if dbroot.is_symlink():
        shutil.rmtree(dbroot.resolve(), ignore_errors=True)
        dbroot.unlink()
    for path in (settings.data_dir, settings.logs_dir, settings.run_dir, settings.config_dir,
                 settings.secrets_file.parent):  # fmt: skip
        shutil.rmtree(path, ignore_errors=True)
    echo(f"Removed the stack's data under {settings.state_dir} (downloads kept in {settings.cache_dir}).")


def _agent_up(connect: Connect, wait_seconds: float = 10.0) -> bool:
    """The agent starts before Connect itself: a worker whose agent does not answer soon has none."""
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if connect.agent_ready():
            return True
        time.sleep(0.5)
    return False
