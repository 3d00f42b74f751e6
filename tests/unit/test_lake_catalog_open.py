"""Opening the default Iceberg SQL catalog from several processes at once, on a platform database
that has no catalog tables yet: a Dagster run and the S3 writer do this on a fresh install. Threads
with their own engines race the same way processes do (each checks, then creates)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from cdc_platform.s3.iceberg_catalog import lake_catalog
from cdc_platform.specs.models import ConnectionSpec

OPENERS = 6


def _lake() -> ConnectionSpec:
    return ConnectionSpec(name="lake", kind="s3", bucket="lake", prefix="raw", table_format="iceberg")


@pytest.mark.parametrize("trial", range(3))
def test_every_opener_gets_the_catalog_when_they_race_to_create_its_tables(
    tmp_path: Path, trial: int
) -> None:
    url = f"sqlite:///{tmp_path / 'platform.sqlite'}"
    start = threading.Barrier(OPENERS)
    errors: list[BaseException] = []
    namespaces: list[list[tuple[str, ...]]] = []

    def open_catalog() -> None:
        start.wait()
        try:
            namespaces.append(lake_catalog(_lake(), None, platform_url=url).list_namespaces())
        except BaseException as exc:  # noqa: BLE001 - the test reports every opener's failure
            errors.append(exc)

    threads = [threading.Thread(target=open_catalog) for _ in range(OPENERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert namespaces == [[]] * OPENERS


def test_a_catalog_that_cannot_be_opened_still_fails_with_the_database_error(tmp_path: Path) -> None:
    from sqlalchemy.exc import OperationalError

    url = f"sqlite:///{tmp_path / 'no-such-dir' / 'platform.sqlite'}"
    with pytest.raises(OperationalError, match="unable to open database file"):
        lake_catalog(_lake(), None, platform_url=url)
