"""Great Expectations suites declared in a pipeline spec, run against the target table in the
database (a GX 1.x SQL data source: the expectations become SQL; no copy of the table in pandas).

GX is imported only here and only when a suite is declared and its check runs: importing it takes
seconds, which the code location's load time must not pay. The target's password reaches GX as a
``${VAR}`` reference that GX substitutes from the environment, so it never appears in GX's
configuration, its errors, or our metadata. GX's product analytics are switched off.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, urlencode

from cdc_platform.db import DRIVERS, password_of, sqlalchemy_url
from cdc_platform.specs.models import Expectation


class UnknownExpectation(ValueError):
    pass


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    kwargs: dict
    success: bool
    observed: dict

    def as_dict(self) -> dict:
        return {
            "expectation": self.expectation,
            "kwargs": self.kwargs,
            "success": self.success,
            **self.observed,
        }


def _class_name(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _observed(result: dict) -> dict:
    """The figures a reader needs to act: the observed value, or how many rows broke the rule and some of them."""
    keep = (
        "observed_value",
        "element_count",
        "unexpected_count",
        "unexpected_percent",
        "partial_unexpected_list",
    )
    return {k: result[k] for k in keep if k in result and result[k] is not None}


def run_suite(specs, spec, target_table: str, expectations: list[Expectation]) -> list[ExpectationOutcome]:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    try:
        # lazy: Great Expectations (seconds to import) only for pipelines that declare a suite
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
    except ImportError as exc:
        raise ImportError("the pipeline declares expectations; install Great Expectations with "
                          "`pip install 'cdc-platform[quality]'`") from exc  # fmt: skip

    built = []
    for e in expectations:
        cls = getattr(gx.expectations, _class_name(e.expectation), None)
        if cls is None:
            raise UnknownExpectation(
                f"Great Expectations {gx.__version__} has no expectation {e.expectation!r}"
            )
        try:
            built.append(cls(**e.kwargs))
        except Exception as exc:  # noqa: BLE001 - GX's validation error names the bad argument
            raise UnknownExpectation(f"{e.expectation}: invalid kwargs {e.kwargs}: {exc}") from exc

    target = specs.connection(spec.target)
    variable = f"CDC_GX_PASSWORD_{secrets.token_hex(6).upper()}"
    os.environ[variable] = quote_plus(password_of(target, specs.directory))
    try:
        url = sqlalchemy_url(target, specs.directory)
        query = f"?{urlencode(dict(url.query))}" if url.query else ""
        connection_string = (f"{DRIVERS[target.kind.value]}://{quote(target.username or '', safe='')}:${{{variable}}}"
                             f"@{target.host}:{target.port}/{quote(target.database or '', safe='')}{query}")  # fmt: skip
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = context.data_sources.add_sql(name=f"{spec.name}_target", connection_string=connection_string)
        asset = source.add_table_asset(
            name=target_table, table_name=target_table, schema_name=spec.target_schema
        )
        batch = asset.add_batch_definition_whole_table("whole_table").get_batch()
        suite = gx.ExpectationSuite(name=f"{spec.name}.{target_table}", expectations=built)
        result = batch.validate(suite)
    finally:
        os.environ.pop(variable, None)
    return [_outcome(e, _result_of(e, result.results)) for e in expectations]


def _result_of(e: Expectation, results: list):
    """The validation result of ``e`` (matched by type and arguments; GX need not keep the order)."""
    for r in results:
        config = r.expectation_config
        if config.type == e.expectation and all(config.kwargs.get(k) == v for k, v in e.kwargs.items()):
            return r
    raise LookupError(f"Great Expectations returned no result for {e.expectation} {e.kwargs}")


def _outcome(e: Expectation, r) -> ExpectationOutcome:
    info = r.exception_info or {}
    raised = [v for v in ([info] if "raised_exception" in info else info.values())
              if isinstance(v, dict) and v.get("raised_exception")]  # fmt: skip
    if raised:
        return ExpectationOutcome(
            e.expectation, e.kwargs, False, {"error": str(raised[0].get("exception_message"))}
        )
    return ExpectationOutcome(e.expectation, e.kwargs, bool(r.success), _observed(dict(r.result or {})))
