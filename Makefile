# replicadb: everything a user types. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# prometheus: promtool for `make test-alerts`, and the Prometheus the e2e layer runs.
SYSTEM_PACKAGES := postgresql-15 postgresql-client-15 pgbouncer redis-server iproute2 util-linux \
  prometheus
PYTEST_ARGS ?=

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  %-18s %s\n", $$1, $$2}'

.PHONY: system-deps
system-deps: ## install the Debian packages the tests need (only those missing)
	@scripts/install-system-packages.sh $(SYSTEM_PACKAGES)

# Two distributions, one virtualenv: the client (router_lib/, replicadb-router) first, since
# the operator's (replicadb) depends on it and it is not on PyPI.
$(VENV)/.installed: pyproject.toml router_lib/pyproject.toml
	@echo "==> python: creating $(VENV) and installing replicadb-router[kube,redis,metrics] and replicadb[dev]"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	@$(PY) -m pip install -q -e './router_lib[kube,redis,metrics]'
	@$(PY) -m pip install -q -e '.[dev]'
	@touch $@

.PHONY: deps
deps: system-deps $(VENV)/.installed ## install system packages and the Python virtualenv

.PHONY: lint
lint: $(VENV)/.installed ## ruff, and the generated sync twins of router_lib are current
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) scripts/async_to_sync.py --check
	@if command -v shellcheck >/dev/null; then \
	  cd e2e/cluster && shellcheck -x --severity=warning *.sh ../../images/kube-proxy/iptables-select.sh; \
	else echo "shellcheck not installed (apt-get install shellcheck): shell scripts not checked"; fi

.PHONY: typecheck
typecheck: $(VENV)/.installed ## mypy (strict)
	$(VENV)/bin/mypy

.PHONY: unit
unit: $(VENV)/.installed ## unit tests only (no servers)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: integration
integration: deps ## integration tests on real PostgreSQL, PgBouncer and Redis processes
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

ALERT_RULES := manifests/monitoring/prometheusrule.yaml
ALERT_BUILD := .build/alerts

.PHONY: test-alerts
test-alerts: deps ## promtool check rules + promtool test rules (tests/alerts/, one file per alert) + check config of the e2e Prometheus
	@mkdir -p $(ALERT_BUILD)
	$(PY) scripts/prometheus_rules.py $(ALERT_RULES) >$(ALERT_BUILD)/replicadb.rules.yaml
	promtool check rules $(ALERT_BUILD)/replicadb.rules.yaml
	$(PY) scripts/prometheus_rules.py --keep-annotation summary $(ALERT_RULES) \
	  >$(ALERT_BUILD)/replicadb.tested.rules.yaml
	promtool test rules tests/alerts/*.test.yaml
	promtool check config $$($(PY) -m e2e.prometheus_server $(ALERT_BUILD)/e2e-prometheus)

.PHONY: test
test: deps lint typecheck ## the test command: install, lint, typecheck, run every test layer
	$(MAKE) --no-print-directory test-alerts
	$(MAKE) --no-print-directory cluster-build  # kube-apiserver for tests/apiserver (cached)
	$(PY) -m pytest tests $(PYTEST_ARGS)
	$(MAKE) orm-suites-reduced
	$(MAKE) e2e-ci E2E_TESTS="$(E2E_LOCAL_CI_TESTS)"
	$(MAKE) e2e-kind

.PHONY: apiserver-tests
apiserver-tests: deps cluster-build ## operator against a real kube-apiserver + etcd and real PostgreSQL (no kubelet)
	$(PY) -m pytest tests/apiserver $(PYTEST_ARGS)

.PHONY: demo
demo: deps ## the main job: local cluster (or $$KUBECONFIG), images, operator, sample database, workload, live lag
	@if [ -n "$$KUBECONFIG" ]; then $(PY) -m e2e.demo; \
	else $(MAKE) --no-print-directory cluster-up && \
	  KUBECONFIG=/var/lib/replicadb-cluster/admin.kubeconfig $(PY) -m e2e.demo; fi

.PHONY: local-up
local-up: deps ## start a local primary + 2 streaming replicas + PgBouncer and print their lag
	$(VENV)/bin/replicadb-local up --replicas 2

.PHONY: local-down
local-down: $(VENV)/.installed ## stop what local-up started and remove its data
	$(VENV)/bin/replicadb-local down

.PHONY: orm-suites
orm-suites: deps ## Django's (11 modules) and SQLAlchemy's (test/orm, test/sql) own suites on the primary, then through replicadb -> .bench/orm_suites.json
	$(PY) -m bench.orm_suites

# The part of Django's suite that runs outside TestCase's transaction (so its reads do go to
# replicas), and SQLAlchemy's ORM query, session and transaction tests (reads through
# routing Sessions at read-your-writes), baselines included: part of `make test`.
.PHONY: orm-suites-reduced
orm-suites-reduced: deps ## Django's transactions, transaction_hooks, select_for_update, backends.postgresql, basic; SQLAlchemy's test/orm test_query, test_session, test_transaction -> .bench/orm_suites_reduced.json
	$(PY) -m bench.orm_suites --check --report orm_suites_reduced --django-modules \
	  basic transactions transaction_hooks select_for_update backends.postgresql \
	  --sqlalchemy-targets test/orm/test_query.py test/orm/test_session.py \
	  test/orm/test_transaction.py

.PHONY: bench-dataplane
bench-dataplane: deps ## failover cycle x5 on local processes -> .bench/dataplane.json
	$(PY) -m bench.dataplane

include e2e/cluster.mk

.PHONY: bench-failover
bench-failover: deps ## 5 failovers per fault kind on the local cluster -> .bench/failover.json
	@if [ -n "$$KUBECONFIG" ]; then $(PY) -m bench.failover; \
	else e2e/cluster/e2e-ci.sh $(PY) -m bench.failover; fi

.PHONY: bench-failover-kind
bench-failover-kind: $(VENV)/.installed ## bench-failover on the kind cluster, with the node faults (loss, partition, freeze, drain) -> .bench/failover.json
	$(KIND_E2E) run $(PY) -m bench.failover

.PHONY: bench-rolling-update
bench-rolling-update: deps ## an image change and a restart-only parameter rolled under a writer on the local cluster -> .bench/rolling_update.json
	@if [ -n "$$KUBECONFIG" ]; then $(PY) -m bench.rolling_update; \
	else e2e/cluster/e2e-ci.sh $(PY) -m bench.rolling_update; fi

.PHONY: bench-operator-crash
bench-operator-crash: deps cluster-build ## operator killed after every failover/switchover step (apiserver layer) -> .bench/operator_crash.json
	$(PY) -m bench.operator_crash

.PHONY: bench-operator-crash-cluster
bench-operator-crash-cluster: deps ## primary cut + acting operator killed, 3 runs on the local cluster -> operator_and_primary_rto_s
	@if [ -n "$$KUBECONFIG" ]; then $(PY) -m bench.operator_crash --cluster; \
	else e2e/cluster/e2e-ci.sh $(PY) -m bench.operator_crash --cluster; fi

.PHONY: crds
crds: $(VENV)/.installed ## regenerate crds/ from the schema in operator/replicadb_operator/crd.py
	$(PY) -m replicadb_operator.crd > crds/replicateddatabases.replicadb.io.yaml

.PHONY: bench-router
bench-router: deps ## router vs plain psycopg pool, classification, RYW, cache -> .bench/router.json
	$(PY) -m bench.router

.PHONY: bench-suite
bench-suite: deps ## mixed workload: primary vs router vs poolers vs cache, PgBouncer sweep to 1000 clients -> .bench/suite.json + .png
	$(PY) -m bench.suite $(BENCH_SUITE_ARGS)

.PHONY: bench-scaling
bench-scaling: deps ## read throughput with 0-3 replicas under a CPU budget per instance (least-outstanding placement); router cost at 8 threads/tasks -> .bench/scaling.json + .png
	$(PY) -m bench.scaling $(BENCH_SCALING_ARGS)

.PHONY: bench-suite-cluster
bench-suite-cluster: $(VENV)/.installed ## the same suite against the demo's database on KUBECONFIG's cluster (after `make demo`)
	KUBECONFIG=$(E2E_KUBECONFIG) $(PY) -m bench.suite --target cluster $(BENCH_SUITE_ARGS)

.PHONY: clean
clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .bench .build
