"""What each role may do, in Dagster's own terms: its webserver permissions and the jobs it sees.

A shared deployment runs one Dagster webserver per role behind the proxy (``access/webserver.py``),
and the proxy sends each signed-in user to the webserver of their role. The webserver enforces the
role itself, so a request sent straight to GraphQL gets the same answer as a click in the UI:

- ``viewer``: Dagster's read-only mode; every mutation is refused.
- ``operator``: launches runs (materialize, re-load a table, pause/resume/restart, checks, alert
  acknowledgements, connection tests), re-executes and terminates them, and reloads the code. It may
  not start or stop sensors and schedules (nor dry-run them: the platform's sensors act on
  connectors), move a sensor's cursor, wipe assets, delete runs, report events by hand or change
  concurrency limits. The admin-only jobs (teardown, apply-drift) are not in its code location at
  all (``definitions_operator.py``), so launching them by name fails with "job not found".
- ``admin``: everything.
"""

from __future__ import annotations

from collections.abc import Mapping

from dagster._core.workspace.permissions import EDITOR_PERMISSIONS, Permissions

from cdc_platform.access.users import Role

#: Dagster permissions an operator does not have (everything else an editor has, it has)
OPERATOR_DENIED: frozenset[str] = frozenset(
    {
        Permissions.START_SCHEDULE,
        Permissions.STOP_RUNNING_SCHEDULE,
        Permissions.SCHEDULE_DRY_RUN,
        Permissions.EDIT_SENSOR,
        Permissions.SENSOR_DRY_RUN,
        Permissions.UPDATE_SENSOR_CURSOR,
        Permissions.DELETE_PIPELINE_RUN,
        Permissions.WIPE_ASSETS,
        Permissions.REPORT_RUNLESS_ASSET_EVENTS,
        Permissions.EDIT_DYNAMIC_PARTITIONS,
        Permissions.TOGGLE_AUTO_MATERIALIZE,
        Permissions.EDIT_CONCURRENCY_LIMIT,
        Permissions.EDIT_APP_MANAGED_COMPONENTS,
    }
)

#: the jobs only an admin may launch: ``cdc_<part>`` and ``cdc_<part>_<pipelines>`` names
ADMIN_ONLY_JOB_PARTS: tuple[str, ...] = ("teardown", "apply_drift")
#: and the teardown by name of a pipeline whose spec is gone (``defs/teardown.py``)
ADMIN_ONLY_JOBS: frozenset[str] = frozenset({"teardown_pipeline_job"})


def is_admin_only_job(name: str) -> bool:
    return name in ADMIN_ONLY_JOBS or any(
        name == f"cdc_{part}" or name.startswith(f"cdc_{part}_") for part in ADMIN_ONLY_JOB_PARTS
    )


def role_permissions(role: Role) -> Mapping[str, bool]:
    """Dagster's permission map for a role (the viewer's is Dagster's read-only map)."""
    if role is Role.viewer:
        return {str(p): False for p in EDITOR_PERMISSIONS}
    denied = OPERATOR_DENIED if role is Role.operator else frozenset()
    return {str(p): bool(allowed) and p not in denied for p, allowed in EDITOR_PERMISSIONS.items()}
