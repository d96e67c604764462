# Local single-node Kubernetes cluster targets (issue 4). Placeholder until the cluster lands.
.PHONY: e2e-ci
e2e-ci: ## e2e layer run by `make test` (brings the local cluster up and down itself)
	@echo "==> e2e: local cluster not built yet; skipping"
