# Local single-node Kubernetes cluster built from upstream sources, and the e2e test layer.
# Included by the top-level Makefile. The scripts live in e2e/cluster/; binaries, images and
# Go caches stay outside the checkout (/var/cache/replicadb), the running cluster's state in
# /var/lib/replicadb-cluster. Needs root.

CLUSTER_SCRIPTS := e2e/cluster
LOCAL_KUBECONFIG := /var/lib/replicadb-cluster/admin.kubeconfig
E2E_KUBECONFIG ?= $(if $(KUBECONFIG),$(KUBECONFIG),$(LOCAL_KUBECONFIG))
E2E_PYTEST_ARGS ?=
# Which e2e files a run takes (all of them unless told), and pytest's 10 slowest tests after it.
E2E_TESTS ?= e2e
E2E_PYTEST := -m e2e --durations=10
# What `make test` runs on the local cluster. kind runs the whole suite on 4 nodes; here only
# what kind cannot run (a Prometheus on the host that scrapes pod addresses) and the path of
# `make demo` (the sample database end to end, refused specs, DNS and volumes). `make e2e-ci`
# still runs every file on the local cluster.
E2E_LOCAL_CI_TESTS := e2e/test_smoke.py e2e/test_operator.py e2e/test_observability.py


.PHONY: cluster-deps
cluster-deps: ## install the Debian packages the local cluster needs (only those missing)
	@$(CLUSTER_SCRIPTS)/deps.sh

.PHONY: cluster-build
cluster-build: cluster-deps ## build Kubernetes, crictl, CoreDNS, local-path-provisioner from source (cached)
	@$(CLUSTER_SCRIPTS)/build.sh

.PHONY: images
images: cluster-build ## build the images without Docker (cached) and import them if the cluster runs
	@$(CLUSTER_SCRIPTS)/images.sh

.PHONY: cluster-up
cluster-up: ## start the local cluster (builds what is not cached); prints the kubeconfig path
	@$(CLUSTER_SCRIPTS)/up.sh

.PHONY: cluster-down
cluster-down: ## stop the local cluster and remove everything it left on the machine
	@$(CLUSTER_SCRIPTS)/down.sh

.PHONY: cluster-clean
cluster-clean: cluster-down ## also remove the cluster's caches (binaries, images, containerd's image store)
	rm -rf /var/cache/replicadb

.PHONY: e2e
e2e: $(VENV)/.installed ## e2e tests against KUBECONFIG (default: the local cluster)
	KUBECONFIG=$(E2E_KUBECONFIG) $(PY) -m pytest $(E2E_TESTS) $(E2E_PYTEST) $(E2E_PYTEST_ARGS)

.PHONY: e2e-ci
e2e-ci: $(VENV)/.installed ## e2e layer run by `make test`: local cluster up, e2e tests, cluster down
	@$(CLUSTER_SCRIPTS)/e2e-ci.sh $(PY) -m pytest $(E2E_TESTS) $(E2E_PYTEST) $(E2E_PYTEST_ARGS)

# kind: several nodes in several zones, the same e2e files. Docker (with a registry): stock
# kindest/node, images from `docker build`. Without Docker (this machine): rootful podman, a
# node image and every image it needs built here (e2e/cluster/kind-image.sh, cached).
KIND_E2E := $(PY) -m e2e.kind_cluster

.PHONY: e2e-kind
e2e-kind: $(VENV)/.installed ## kind cluster (1 control plane + 3 zoned workers) up, e2e tests, down -> .bench/e2e_kind.json
	$(KIND_E2E) e2e --durations=10 $(E2E_PYTEST_ARGS)

.PHONY: kind-up
kind-up: $(VENV)/.installed ## only bring the kind cluster up (prints its kubeconfig)
	$(KIND_E2E) up

.PHONY: kind-down
kind-down: $(VENV)/.installed ## delete the kind cluster and everything the provider left behind
	$(KIND_E2E) down
