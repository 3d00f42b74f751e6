"""Bad specs fail at load with a message naming the file, the pipeline and the field."""

from __future__ import annotations

import pytest
import yaml

from cdc_platform.secrets import connect_reference, resolve_secret
from cdc_platform.specs.loader import SpecErrors, load_specs
from cdc_platform.specs.models import EnvSecret, FileSecret

CONN = {"kind": "postgresql", "host": "h", "port": 5432, "database": "d", "username": "u",
        "password": {"env": "SRC_PW"}}  # fmt: skip
PIPE = {"name": "p1", "source": "a", "target": "b", "tables": {"names": ["public.t"]}, "target_schema": "s"}


def _write(tmp_path, connections=None, pipelines=None, name="pipelines.yaml"):
    (tmp_path / "connections.yaml").write_text(
        yaml.safe_dump({"connections": connections or {"a": CONN, "b": CONN}})
    )
    (tmp_path / name).write_text(
        yaml.safe_dump({"pipelines": pipelines if pipelines is not None else [PIPE]})
    )


def _error(tmp_path) -> str:
    with pytest.raises(SpecErrors) as info:
        load_specs(tmp_path)
    return str(info.value)


def test_valid_specs_load(tmp_path):
    _write(tmp_path)
    specs = load_specs(tmp_path)
    assert list(specs.pipelines) == ["p1"] and specs.connections["a"].port == 5432


def test_unknown_connection_names_file_pipeline_and_field(tmp_path):
    _write(tmp_path, pipelines=[{**PIPE, "target": "nowhere"}])
    message = _error(tmp_path)
    assert "pipelines.yaml" in message and "pipeline 'p1'" in message and "field 'target'" in message
    assert "unknown connection 'nowhere'" in message


def test_duplicate_pipeline_names(tmp_path):
    _write(tmp_path, pipelines=[PIPE, PIPE])
    assert "duplicate pipeline name" in _error(tmp_path)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"target_schema": "bad;drop"}, "target_schema", "not a valid target schema"),
        ({"tables": {"names": ["public.t x"]}}, "tables.names", "not a valid"),
        ({"tables": {"names": ["just_a_table"]}}, "tables.names", "schema.table"),
        ({"name": "Has-Caps"}, "name", "not a valid pipeline name"),
        ({"mode": "sometimes"}, "mode", "full_load_only"),
        ({"options": {"parallelism": 0}}, "options.parallelism", "greater than or equal to 1"),
        (
            {"overrides": {"public.t": {"target_name": "x y"}}},
            "overrides.public.t.target_name",
            "not a valid",
        ),
        ({"surprise": 1}, "surprise", "Extra inputs"),
        (
            {"options": {"source_overrides": {"table.include.list": "x"}}},
            "options.source_overrides",
            "'table.include.list' cannot be overridden (tuning keys only",
        ),
        (
            {"options": {"sink_overrides": {"connection.password": "x"}}},
            "options.sink_overrides",
            "cannot be overridden",
        ),
        (
            {"options": {"sink_overrides": {"consumer.override.sasl.jaas.config": "x"}}},
            "options.sink_overrides",
            "names a secret",
        ),
        (
            {
                "options": {
                    "sink_overrides": {
                        "dialect.postgres.unnest.insert.enabled": "true",
                        "use.reduction.buffer": "false",
                    }
                }
            },
            "options.sink_overrides",
            "needs use.reduction.buffer",
        ),
    ],
)
def test_invalid_pipeline_fields(tmp_path, change, field, words):
    _write(tmp_path, pipelines=[{**PIPE, **change}])
    message = _error(tmp_path)
    assert f"field '{field}" in message, message
    assert words in message, message
    assert "pipelines.yaml" in message


def test_broken_yaml_names_the_file_and_line(tmp_path):
    _write(tmp_path)
    (tmp_path / "pipelines.yaml").write_text("pipelines:\n  - name: x\n   bad: [\n")
    message = _error(tmp_path)
    assert "pipelines.yaml" in message and "not valid YAML" in message and "line 3" in message, message


def test_inline_password_is_refused(tmp_path):
    _write(tmp_path, connections={"a": {**CONN, "password": "hunter2"}, "b": CONN})
    message = _error(tmp_path)
    assert "inline password is not allowed" in message and "connections.a.password" in message
    assert "hunter2" not in message


def test_unset_variable_in_a_field_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_PORT", raising=False)
    _write(tmp_path, connections={"a": {**CONN, "port": "${NOPE_PORT}"}, "b": CONN})
    assert "environment variable NOPE_PORT is not set" in _error(tmp_path)


def test_variable_defaults_expand(tmp_path, monkeypatch):
    monkeypatch.delenv("SOME_PORT", raising=False)
    _write(tmp_path, connections={"a": {**CONN, "port": "${SOME_PORT:-6543}"}, "b": CONN})
    assert load_specs(tmp_path).connections["a"].port == 6543


def test_secrets_resolve_and_become_provider_references(tmp_path, monkeypatch):
    monkeypatch.setenv("SRC_PW", "s3cret")
    assert resolve_secret(EnvSecret(env="SRC_PW"), tmp_path) == "s3cret"
    assert connect_reference(EnvSecret(env="SRC_PW"), tmp_path) == "${env:SRC_PW}"
    (tmp_path / "secrets.properties").write_text("db.password=abc\n")
    ref = FileSecret(file="secrets.properties", key="db.password")
    assert resolve_secret(ref, tmp_path) == "abc"
    assert connect_reference(ref, tmp_path) == f"${{file:{tmp_path / 'secrets.properties'}:db.password}}"
    assert connect_reference(FileSecret(file="/run/pw"), tmp_path) == "${dir:/run:pw}"


def test_demo_specs_are_valid():
    specs = load_specs()
    assert "shop_to_analytics" in specs.pipelines


def test_every_database_pair_has_a_full_load_path(tmp_path):
    sqlserver = {**CONN, "kind": "sqlserver", "port": 1433}
    _write(tmp_path, connections={"a": sqlserver, "b": CONN})
    assert load_specs(tmp_path).pipelines["p1"].spec.mode.value == "full_load_and_cdc"
    _write(tmp_path, connections={"a": CONN, "b": sqlserver})
    assert load_specs(tmp_path).pipelines["p1"].spec.mode.value == "full_load_and_cdc"


def test_a_yaml_file_under_a_directory_named_stack_is_still_read(tmp_path):
    (tmp_path / "stack").mkdir()
    _write(tmp_path / "stack")
    assert list(load_specs(tmp_path).pipelines) == ["p1"]


def test_variables_do_not_turn_string_fields_into_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("CDC_TEST_DB", "2024")
    monkeypatch.setenv("CDC_TEST_PORT", "6543")
    _write(tmp_path, connections={"a": {**CONN, "database": "${CDC_TEST_DB}", "port": "${CDC_TEST_PORT}"},
                                  "b": CONN})  # fmt: skip
    conn = load_specs(tmp_path).connections["a"]
    assert conn.database == "2024" and conn.port == 6543


def test_an_inline_password_is_reported_once_not_also_as_an_unknown_connection(tmp_path):
    _write(tmp_path, connections={"a": {**CONN, "password": "hunter2"}, "b": CONN})
    message = _error(tmp_path)
    assert "inline password is not allowed" in message and "unknown connection" not in message
    assert "hunter2" not in message


@pytest.mark.parametrize("key", ["ssl.key.password", "sasl.jaas.config", "aws.secret.access.key", "ssl.key",
                                 "database.sslpassword", "api_token"])  # fmt: skip
def test_secret_options_must_be_references(tmp_path, key):
    _write(tmp_path, connections={"a": {**CONN, "options": {key: "plaintext-value"}}, "b": CONN})
    message = _error(tmp_path)
    assert f"option {key!r} holds a secret" in message and "plaintext-value" not in message
    _write(tmp_path, connections={"a": {**CONN, "options": {key: "${env:SOME_SECRET}"}}, "b": CONN})
    assert load_specs(tmp_path).connections["a"].options[key] == "${env:SOME_SECRET}"


def test_ordinary_options_with_key_inside_their_name_pass(tmp_path):
    _write(tmp_path, connections={"a": {**CONN, "options": {"message.key.columns": "t:id"}}, "b": CONN})
    assert load_specs(tmp_path).connections["a"].options["message.key.columns"] == "t:id"


def test_a_missing_relative_secret_file_says_what_to_set(tmp_path):
    with pytest.raises(Exception, match="relative to the specs directory") as info:
        resolve_secret(FileSecret(file="../.stack/secrets/none.properties", key="k"), tmp_path)
    assert "CDC_STACK_DIR" in str(info.value)


def test_load_data_variables_are_stable_names():
    from cdc_platform.pipeline.full_load.from_postgresql import pg_csv_expression
    from cdc_platform.schema.model import Column
    from cdc_platform.schema.types import CanonicalType

    column = Column("raw", CanonicalType("binary"), True, "bytea")
    # named by position, not hash(): the same in every process
    assert pg_csv_expression(column, 3, "mariadb")[1] == "@b3"
