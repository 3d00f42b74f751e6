"""Where the stack's databases keep their files when the checkout sits in a private directory."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from cdc_platform.stack.prerequisites import database_root, reachable_state_dir, traversable_by_others


def test_state_dir_reachable_by_others_is_used_as_is():
    public = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own tmp_path lives under a 0700 directory
    try:
        public.chmod(0o755)
        assert database_root(public / "stack", "cdcstack") == public / "stack"
        assert database_root(public / "stack", None) == public / "stack"
    finally:
        shutil.rmtree(public)


def test_private_checkout_moves_database_files_and_links_them(tmp_path):
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    state = private / "checkout" / ".stack"
    assert not traversable_by_others(state)
    home = Path(tempfile.mkdtemp(dir="/tmp"))  # stands in for /var/lib/cdc-platform: no root needed
    root = database_root(state, "cdcstack", home=home)
    try:
        assert root.parent == home
        assert (state / "dbroot").resolve() == root.resolve()
        assert database_root(state, "cdcstack", home=home) == root  # stable
        assert database_root(state, None) == root  # the files stay where an earlier start put them
        assert database_root(private / "other" / ".stack", None) == private / "other" / ".stack"
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_a_port_in_the_ephemeral_range_is_refused_naming_its_variable(tmp_path):
    import pytest

    from cdc_platform.stack.errors import StackError
    from cdc_platform.stack.manager import check_not_ephemeral, ephemeral_range

    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text("32768\t60999\n")
    assert ephemeral_range(range_file) == (32768, 60999)
    with pytest.raises(StackError, match=r"55000 \(s3, CDC_S3_PORT\)") as info:
        check_not_ephemeral({"postgres": 15432, "s3": 55000}, (32768, 60999))
    assert "below 32768 or above 60999" in str(info.value)
    check_not_ephemeral({"postgres": 15432}, (32768, 60999))  # outside: fine
    assert ephemeral_range(tmp_path / "missing") is None


def test_the_default_ports_are_outside_the_usual_ephemeral_ranges():
    from cdc_platform.settings import PORT_VARIABLES

    # Linux's default (32768-60999) and IANA's (49152-65535)
    assert all(port < 32768 for _, port in PORT_VARIABLES.values())


def test_a_private_state_dir_moves_where_the_service_user_can_read_it(tmp_path):
    """Kafka and Connect run as the service user and read jars, configs and secrets from here."""
    import pytest

    from cdc_platform.stack.errors import StackError

    home = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        private = tmp_path / "home"
        private.mkdir(mode=0o700)
        state = private / "checkout" / ".stack"
        (state / "cache").mkdir(parents=True)
        (state / "cache" / "kafka.jar").write_text("jar")
        moved = reachable_state_dir(state, "cdcstack", home=home)
        assert moved.parent == home and traversable_by_others(moved)
        assert state.is_symlink() and state.resolve() == moved
        assert (moved / "cache" / "kafka.jar").read_text() == "jar"
        assert reachable_state_dir(state.resolve(), "cdcstack", home=home) == moved  # stable
        assert reachable_state_dir(private / "x", None, home=home) == private / "x"  # not root

        busy = private / "busy" / ".stack"
        (busy / "run").mkdir(parents=True)
        from cdc_platform.stack.processes import PidFile

        PidFile(busy / "run" / "postgres.pid").write(__import__("os").getpid())
        with pytest.raises(StackError, match=r"cdc-platform stack down"):
            reachable_state_dir(busy, "cdcstack", home=home)
        assert busy.is_dir() and not busy.is_symlink()  # nothing moved
    finally:
        shutil.rmtree(home)


def test_later_connect_workers_listen_next_to_the_first_and_join_its_group(tmp_path, monkeypatch):
    """`CDC_CONNECT_WORKERS=2`: a second worker on the next REST and Jolokia ports, in the same group
    with the same storage topics, and every client gets both URLs so a stopped worker costs nothing."""
    import pytest

    from cdc_platform.settings import load_stack_settings
    from cdc_platform.stack.errors import StackError
    from cdc_platform.stack.manager import check_not_ephemeral
    from cdc_platform.stack.services import Connect, all_services

    monkeypatch.setenv("CDC_STACK_DIR", str(tmp_path))
    monkeypatch.setenv("CDC_CONNECT_PORT", "18183")
    monkeypatch.setenv("CDC_CONNECT_WORKERS", "2")
    settings = load_stack_settings()
    names = [s.name for s in all_services(settings)]
    assert names == ["postgres", "mariadb", "kafka", "connect", "connect-2", "s3"]
    first, second = (s for s in all_services(settings) if isinstance(s, Connect))
    assert second.ports == {"connect-2": 18184, "jolokia-2": settings.jolokia_port + 1}
    assert (second.log_file.name, second.pid_file.path.name) == ("connect-2.log", "connect-2.pid")
    assert settings.connect_cluster_url == "http://127.0.0.1:18183,http://127.0.0.1:18184"
    assert (
        settings.jolokia_cluster_url.split(",")[1] == f"http://127.0.0.1:{settings.jolokia_port + 1}/jolokia"
    )
    first.prepare(), second.prepare()
    one, two = (
        dict(line.split("=", 1) for line in w.properties_file.read_text().splitlines())
        for w in (first, second)
    )
    assert one["group.id"] == two["group.id"] and one["offset.storage.topic"] == two["offset.storage.topic"]
    assert (two["listeners"], two["rest.advertised.port"]) == ("http://127.0.0.1:18184", "18184")
    assert first.properties_file != second.properties_file
    with pytest.raises(StackError, match=r"CDC_CONNECT_PORT \(worker 2 uses it \+ 1\)"):
        check_not_ephemeral(second.ports, (18184, 18184))
    monkeypatch.setenv("CDC_CONNECT_WORKERS", "9")
    with pytest.raises(ValueError, match="CDC_CONNECT_WORKERS='9' is outside 1..4"):
        load_stack_settings()


def test_the_bulk_connect_cluster_is_a_group_of_its_own_at_a_lower_cpu_priority(tmp_path, monkeypatch):
    """`CDC_CONNECT_BULK=1`: a separate cluster (its own group and storage topics, so placing a
    connector there never rebalances the main group) on its own ports, started under ``nice``."""
    import pytest

    from cdc_platform.settings import load_stack_settings
    from cdc_platform.stack.services import BulkConnect, Connect, all_services

    monkeypatch.setenv("CDC_STACK_DIR", str(tmp_path))
    monkeypatch.delenv("CDC_CONNECT_BULK", raising=False)
    assert "connect-bulk" not in [s.name for s in all_services(load_stack_settings())]
    monkeypatch.setenv("CDC_CONNECT_BULK", "1")
    monkeypatch.setenv("CDC_CONNECT_BULK_NICE", "15")
    settings = load_stack_settings()
    names = [s.name for s in all_services(settings)]
    assert names == ["postgres", "mariadb", "kafka", "connect", "connect-bulk", "s3"]
    main, bulk = (s for s in all_services(settings) if isinstance(s, Connect))
    assert isinstance(bulk, BulkConnect)
    assert bulk.ports == {"connect-bulk": 18093, "jolokia-bulk": 18788}
    assert (settings.connect_bulk_url, settings.jolokia_bulk_url) == (
        "http://127.0.0.1:18093", "http://127.0.0.1:18788/jolokia")  # fmt: skip
    assert (bulk.log_file.name, bulk.pid_file.path.name) == ("connect-bulk.log", "connect-bulk.pid")
    main.prepare(), bulk.prepare()
    one, two = (
        dict(line.split("=", 1) for line in w.properties_file.read_text().splitlines()) for w in (main, bulk)
    )
    assert one["group.id"] == "cdc-platform-connect" and two["group.id"] == "cdc-platform-connect-bulk"
    for topic in ("config", "offset", "status"):
        assert one[f"{topic}.storage.topic"] != two[f"{topic}.storage.topic"]
        assert two[f"{topic}.storage.topic"].startswith("_cdc_connect_bulk_")
    assert two["listeners"] == "http://127.0.0.1:18093"
    monkeypatch.setattr(
        Connect, "command", lambda self: ["java", "ConnectDistributed", str(self.properties_file)]
    )
    launched = ["java", "ConnectDistributed", str(bulk.properties_file)]
    nice, *rest = bulk.command()
    assert nice.endswith("nice") and rest == ["-n", "15", *launched]
    monkeypatch.delenv("CDC_CONNECT_BULK_NICE")
    assert BulkConnect(load_stack_settings()).command() == launched  # at the default 0, no wrapper
    monkeypatch.setenv("CDC_CONNECT_BULK_PORT", "18193")
    assert load_stack_settings().connect_bulk_url == "http://127.0.0.1:18193"
    monkeypatch.setenv("CDC_CONNECT_BULK_NICE", "20")
    with pytest.raises(ValueError, match="CDC_CONNECT_BULK_NICE='20' is outside 0..19"):
        load_stack_settings()
    monkeypatch.setenv("CDC_CONNECT_BULK", "maybe")
    with pytest.raises(ValueError, match="CDC_CONNECT_BULK='maybe' is not one of"):
        load_stack_settings()
