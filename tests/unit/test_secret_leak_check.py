"""The session-end search for leaked passwords finds a password wherever it is printed."""

from __future__ import annotations

from cdc_platform.settings import StackSettings
from tests.conftest import find_secret_leaks


def _settings(tmp_path) -> StackSettings:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "stack.properties").write_text(
        "postgres.password=Sup3rSecretValue\nmariadb.password=Other0ne\n"
    )
    (tmp_path / "logs").mkdir()
    return StackSettings(tmp_path, tmp_path, 1, 2, 3, 4, 5, 6)


def test_a_password_in_captured_output_or_a_service_log_is_found(tmp_path):
    settings = _settings(tmp_path)
    (tmp_path / "logs" / "connect.log").write_text("connecting with Other0ne\n")
    outputs = [("tests/x.py::t", "Captured stdout call", "url postgresql://cdc:Sup3rSecretValue@h/db"),
               ("tests/x.py::u", "Captured stdout call", "nothing here")]  # fmt: skip
    leaks = find_secret_leaks(settings, outputs)
    assert leaks == [
        "tests/x.py::t (Captured stdout call)",
        f"service log {tmp_path / 'logs' / 'connect.log'}",
    ]


def test_clean_output_has_no_leak(tmp_path):
    assert find_secret_leaks(_settings(tmp_path), [("t", "s", "password=${file:/x:postgres.password}")]) == []
