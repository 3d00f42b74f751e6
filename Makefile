# Local stack and project tasks. `make demo` and `make test` are the README's two commands.
PY ?= python3
export DAGSTER_HOME ?= $(CURDIR)/dagster_home

.PHONY: install stack-up stack-down stack-status browser proxy-tools demo test lint bench

install:
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'

stack-up: install
	cdc-platform stack up

stack-down:
	cdc-platform stack down

stack-status:
	cdc-platform stack status

# Debian's Chromium, which the UI test drives (tests/integration/test_ui.py): installed when missing
# and run as root, else named. The test fails, never skips, without it.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| { echo "The UI test needs Debian's chromium: sudo apt-get install -y chromium" >&2; exit 1; }

# Debian's nginx, the production profile's proxy (its config is checked with `nginx -t` by the unit
# tests): installed when missing and run as root, without starting Debian's own nginx service.
proxy-tools:
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { \
		[ "$$(id -u)" = 0 ] || { echo "The tests need Debian's nginx: sudo apt-get install -y nginx" >&2; exit 1; }; \
		guard=; [ -e /usr/sbin/policy-rc.d ] || { guard=1; printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
		status=$$?; [ -z "$$guard" ] || rm -f /usr/sbin/policy-rc.d; exit $$status; }

# Seed the demo shop, materialize its pipeline, show live changes replicating, then open the UI
# (`dg dev`, Dagster's recommended way; `dagster dev -w workspace.yaml` loads the same location).
# The UI has no sign-in and listens on loopback only; a team runs `stack up --profile production`.
demo: stack-up
	$(PY) -m cdc_platform.demo
	dg dev --host 127.0.0.1 --port 3000

# The whole test suite, against the real local stack (started here; a no-op when it runs): the
# independent tests side by side (pytest-xdist), then alone the few that stop, kill or reconfigure
# a service every test shares (marker `serial`), then the S3 tests again with SeaweedFS's S3 gateway
# as the stack's S3 server instead of moto (built once from the Go module proxy), and moto back.
# Every phase always runs; any failing fails.
TEST_WORKERS ?= 3
S3_TESTS = tests/integration/test_s3_target.py tests/integration/test_lake_tables.py tests/integration/test_s3_writer_runs.py tests/integration/test_value_fidelity.py
test: stack-up browser proxy-tools
	@status=0; \
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not serial" --durations=15 || status=1; \
	$(PY) -m pytest -q -m serial --durations=15 || status=1; \
	{ CDC_S3_SERVER=seaweedfs cdc-platform stack up >/dev/null \
	  && CDC_S3_SERVER=seaweedfs $(PY) -m pytest -q -n 2 $(S3_TESTS); } || status=1; \
	cdc-platform stack up >/dev/null || status=1; \
	exit $$status

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: stack-up
	$(PY) bench/full_load.py
	$(PY) bench/reconcile.py
