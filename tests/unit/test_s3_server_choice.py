"""``CDC_S3_SERVER``: the stack's S3 service is moto or SeaweedFS's S3 gateway. What is checked here
without starting anything: the choice is validated, SeaweedFS's servers get ports that move with
``CDC_S3_PORT`` and that ``up`` checks, and ``up`` recognises which server a running pid is. The
servers themselves run in ``make test`` (the S3 tests on each)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from cdc_platform.settings import load_stack_settings, port_variable
from cdc_platform.stack.seaweedfs import weed_binary
from cdc_platform.stack.services import S3


def _s3(tmp_path: Path, server: str) -> S3:
    settings = dataclasses.replace(load_stack_settings(), state_dir=tmp_path / ".stack", s3_server=server)
    return S3(settings)


def test_an_unknown_s3_server_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("CDC_S3_SERVER", "minio")
    with pytest.raises(ValueError, match="CDC_S3_SERVER='minio' is not one of moto, seaweedfs"):
        load_stack_settings()
    monkeypatch.setenv("CDC_S3_SERVER", "SeaweedFS")
    assert load_stack_settings().s3_server == "seaweedfs"
    monkeypatch.delenv("CDC_S3_SERVER")
    assert load_stack_settings().s3_server == "moto"


def test_seaweedfs_listens_on_ports_that_move_with_the_s3_port(tmp_path):
    moto, weed = _s3(tmp_path, "moto"), _s3(tmp_path, "seaweedfs")
    assert moto.ports == {"s3": moto.port}
    port = weed.port
    assert weed.ports == {
        "s3": port, "s3-master": port + 11, "s3-volume": port + 12, "s3-filer": port + 13,
        "s3-grpc": port + 10000, "s3-master-grpc": port + 10011, "s3-volume-grpc": port + 10012,
        "s3-filer-grpc": port + 10013,
    }  # fmt: skip
    assert {port_variable(name) for name in weed.ports} <= {"CDC_S3_PORT"} | {
        f"CDC_S3_PORT ({name} moves with it)" for name in weed.ports
    }
    command = weed.command()
    assert command[0] == str(weed_binary(weed.settings)) and command[1] == "server"
    for flag in (f"-s3.port={port}", f"-master.port={port + 11}", f"-volume.port={port + 12}",
                 f"-filer.port={port + 13}", f"-dir={weed.data_path}", f"-ip.bind={weed.settings.host}"):  # fmt: skip
        assert flag in command
    assert moto.command()[1:3] == ["-m", "moto.server"]


def test_up_tells_which_server_a_running_pid_is(tmp_path):
    """A process that is not ``weed`` counts as moto, and ``weed`` as SeaweedFS."""
    fake = tmp_path / "weed"
    fake.symlink_to(sys.executable)  # a program whose name is weed
    # each child says it runs once exec has replaced the forked pytest, whose cmdline it had till then
    sleeper = "print('ready', flush=True); import time; time.sleep(30)"
    weed_like = subprocess.Popen([str(fake), "-c", sleeper], stdout=subprocess.PIPE, text=True)
    python = subprocess.Popen([sys.executable, "-c", sleeper], stdout=subprocess.PIPE, text=True)
    try:
        assert weed_like.stdout.readline() == python.stdout.readline() == "ready\n"
        assert _s3(tmp_path, "seaweedfs").runs_as_configured(weed_like.pid)
        assert not _s3(tmp_path, "moto").runs_as_configured(weed_like.pid)
        assert _s3(tmp_path, "moto").runs_as_configured(python.pid)
        assert not _s3(tmp_path, "seaweedfs").runs_as_configured(python.pid)
    finally:
        for process in (weed_like, python):
            process.kill()
            process.wait()
            process.stdout.close()
