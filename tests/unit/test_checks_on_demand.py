"""`cdc-platform check` without a database: which checks a selection names, the errors that list
what exists, and a run that dies before its checks report. The checks' own results against real
databases are in tests/integration/test_quality_checks.py."""

from __future__ import annotations

import dagster as dg
import pytest

from cdc_platform.dagster.catalog import write_catalog
from cdc_platform.dagster.checks_on_demand import (
    CheckSelectionError,
    ChecksRunFailed,
    pipeline_check_defs,
    run_checks,
    select_checks,
)
from cdc_platform.specs.loader import load_specs
from tests.unit.test_definitions_graph import CATALOG, specs_dir  # noqa: F401 - the fixture


@pytest.fixture
def orders(specs_dir):  # noqa: F811 - the imported fixture
    state = specs_dir / "state"
    write_catalog(CATALOG, state)
    defs, tables = pipeline_check_defs(load_specs(specs_dir), "orders", state)
    return defs, tables


def test_the_selection_maps_source_tables_to_their_checks(orders):
    defs, tables = orders
    assert tables == {"public.customers": dg.AssetKey(["dw", "dw", "customers"]),
                      "public.orders": dg.AssetKey(["dw", "dw", "sales"])}  # fmt: skip
    everything = select_checks(defs, "orders", tables, (), ())
    assert len(everything) == 8 and set(everything.values()) == {"public.customers", "public.orders"}
    one = select_checks(defs, "orders", tables, ("public.orders",), ("row_count_parity",))
    assert one == {dg.AssetCheckKey(dg.AssetKey(["dw", "dw", "sales"]), "row_count_parity"): "public.orders"}


def test_unknown_names_are_refused_with_the_pipelines_own_list(orders):
    defs, tables = orders
    with pytest.raises(CheckSelectionError, match=r"has no table public.nope; its tables: public.customers, "
                                                  r"public.orders$"):  # fmt: skip
        select_checks(defs, "orders", tables, ("public.nope",), ())
    with pytest.raises(CheckSelectionError, match=r"has no check row_counts; its checks: checksum_reconciliation, "
                                                  r"replication_freshness, row_count_parity, schema_drift$"):  # fmt: skip
        select_checks(defs, "orders", tables, (), ("row_counts",))


def test_a_run_that_dies_before_its_checks_report_is_an_error_not_a_pass():
    """A check that raises instead of returning a result (ours catch per table; this one does not)."""

    @dg.multi_asset_check(specs=[dg.AssetCheckSpec("row_count_parity", asset="t")], can_subset=True)
    def _broken():
        raise ConnectionError("the target went away")

    defs = dg.Definitions(assets=[dg.AssetSpec("t")], asset_checks=[_broken])
    key = dg.AssetCheckKey(dg.AssetKey("t"), "row_count_parity")
    with pytest.raises(
        ChecksRunFailed,
        match="ConnectionError: the target went away; no result for row_count_parity on public.t",
    ):
        run_checks(defs, {key: "public.t"}, dg.DagsterInstance.ephemeral())
