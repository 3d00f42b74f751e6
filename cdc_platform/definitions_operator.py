"""The code location an operator's webserver loads: the platform's, without the admin-only jobs.

It is served by the operator's own code server, under the location name ``cdc_platform``
(``stack/production.py``; ``code-operator`` in docker-compose.yml), so the runs an
operator launches are the same jobs the daemon knows, and the sensors and schedules it shows are the
same ones (their state is keyed by location, repository and name). Teardown and apply-drift simply
do not exist here: a launch of either by name, from the UI or straight through GraphQL, finds no job.
"""

from dagster_shared.record import copy

import cdc_platform.definitions as platform
from cdc_platform.access.roles import is_admin_only_job

defs = copy(platform.defs, jobs=[job for job in platform.defs.jobs or [] if not is_admin_only_job(job.name)])
