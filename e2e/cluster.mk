# Local single-node Kubernetes cluster built from upstream sources, and the e2e test layer.
# Included by the top-level Makefile. The scripts live in e2e/cluster/; binaries, images and
# Go caches stay outside the checkout (/var/cache/replicadb), the running cluster's state in
# /var/lib/replicadb-cluster. Needs root.

CLUSTER_SCRIPTS := e2e/cluster
LOCAL_KUBECONFIG := /var/lib/replicadb-cluster/admin.kubeconfig
E2E_KUBECONFIG ?= $(if $(KUBECONFIG),$(KUBECONFIG),$(LOCAL_KUBECONFIG))
E2E_PYTEST_ARGS ?=

KIND ?= kind
DOCKER ?= docker
KIND_CLUSTER ?= replicadb
KIND_NODE_IMAGE ?= kindest/node:v1.32.2
KIND_KUBECONFIG ?= $(HOME)/.kube/kind-$(KIND_CLUSTER).kubeconfig
INSTANCE_IMAGE ?= localhost/replicadb/instance:dev
OPERATOR_IMAGE ?= localhost/replicadb/operator:dev

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
	KUBECONFIG=$(E2E_KUBECONFIG) $(PY) -m pytest e2e -m e2e $(E2E_PYTEST_ARGS)

.PHONY: e2e-ci
e2e-ci: $(VENV)/.installed ## e2e layer run by `make test`: local cluster up, e2e tests, cluster down
	@$(CLUSTER_SCRIPTS)/e2e-ci.sh $(PY) -m pytest e2e -m e2e $(E2E_PYTEST_ARGS)

# kind path, for machines with Docker and a registry (not this one).
.PHONY: e2e-kind
e2e-kind: $(VENV)/.installed ## kind cluster + images built with docker + the same e2e tests
	@$(KIND) get clusters 2>/dev/null | grep -qx '$(KIND_CLUSTER)' || \
	  $(KIND) create cluster --name $(KIND_CLUSTER) --image $(KIND_NODE_IMAGE) \
	    --config e2e/kind-config.yaml --wait 120s
	mkdir -p $(dir $(KIND_KUBECONFIG))
	$(KIND) get kubeconfig --name $(KIND_CLUSTER) >$(KIND_KUBECONFIG)
	$(DOCKER) build -f operator/instance.Dockerfile -t $(INSTANCE_IMAGE) .
	$(DOCKER) build -f operator/Dockerfile -t $(OPERATOR_IMAGE) .
	$(KIND) load docker-image --name $(KIND_CLUSTER) $(INSTANCE_IMAGE) $(OPERATOR_IMAGE)
	KUBECONFIG=$(KIND_KUBECONFIG) REPLICADB_INSTANCE_IMAGE=$(INSTANCE_IMAGE) \
	  $(PY) -m pytest e2e -m e2e $(E2E_PYTEST_ARGS)

.PHONY: e2e-kind-down
e2e-kind-down: ## delete the kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)
