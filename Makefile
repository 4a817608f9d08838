# The single entry point. `make up` runs the system, `make test` runs every check.
# Node.js and pnpm are provisioned into .tools/ (versions in versions.env); servers run from
# deploy/local/ as plain processes on 127.0.0.1; downloads are cached in ~/.cache/context-service.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/node_modules/.bin:$(PATH)

NODE := .tools/bin/node
DEPS_STAMP := node_modules/.deps-stamp
PROTO_DEPS := .tools/proto-deps/.stamp
GEN_DIR := libs/proto/src/gen
API_REFERENCE := docs/reference
PROTOC_GEN_DOC := .tools/bin/protoc-gen-doc
GRPCURL := .tools/bin/grpcurl
CHROMIUM := .tools/bin/chromium
PDFTOTEXT := .tools/bin/pdftotext
# The SDK's own copy of the API's types (see clients/typescript/buf.gen.yaml).
CLIENT_GEN_DIR := clients/typescript/src/gen
PACKAGE_JSONS := package.json $(wildcard clients/*/package.json examples/package.json libs/*/package.json services/*/package.json test/package.json bench/package.json)

.PHONY: help
help: ## Lists the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# --- toolchain and dependencies ------------------------------------------------------------------

$(NODE): versions.env scripts/toolchain.sh
	@scripts/toolchain.sh >/dev/null
	@touch $@

$(DEPS_STAMP): $(NODE) pnpm-lock.yaml $(PACKAGE_JSONS)
	@pnpm install --frozen-lockfile --reporter=append-only
	@touch $@

$(PROTO_DEPS): versions.env scripts/proto-deps.sh
	@scripts/proto-deps.sh
	@touch $@

.PHONY: toolchain deps
toolchain: $(NODE) ## Provisions Node.js and pnpm (pinned in versions.env) into .tools/
deps: $(DEPS_STAMP) $(PROTO_DEPS) ## Installs the workspace's packages

# --- protobuf -------------------------------------------------------------------------------------

.PHONY: generate check-generated breaking
$(PROTOC_GEN_DOC): versions.env scripts/go-tool.sh
	@scripts/go-tool.sh protoc-gen-doc

$(GRPCURL): versions.env scripts/go-tool.sh
	@scripts/go-tool.sh grpcurl

$(CHROMIUM): versions.env scripts/chromium.sh scripts/apt-tool.sh
	@scripts/chromium.sh

$(PDFTOTEXT): versions.env scripts/pdftotext.sh scripts/apt-tool.sh
	@scripts/pdftotext.sh

generate: deps $(PROTOC_GEN_DOC) ## Regenerates libs/proto/src/gen, the SDK's clients/typescript/src/gen and the API reference (docs/reference) from proto/
	@rm -rf $(GEN_DIR) $(CLIENT_GEN_DIR) $(API_REFERENCE)
	@buf generate
	@buf generate --template clients/typescript/buf.gen.yaml
	@buf generate --template buf.gen.docs.yaml

check-generated: generate ## Fails when the committed generated code or API reference is not what proto/ generates
	@if ! git diff --quiet -- $(GEN_DIR) $(CLIENT_GEN_DIR) $(API_REFERENCE) || [ -n "$$(git ls-files --others --exclude-standard -- $(GEN_DIR) $(CLIENT_GEN_DIR) $(API_REFERENCE))" ]; then \
	  git status --short -- $(GEN_DIR) $(CLIENT_GEN_DIR) $(API_REFERENCE); \
	  echo "generated code or docs/reference is stale: run 'make generate' and commit the result" >&2; exit 1; \
	fi

breaking: deps ## Fails on wire-breaking changes to proto/ since the previous commit
	@scripts/buf-breaking.sh

# --- checks -----------------------------------------------------------------------------------------

.PHONY: lint typecheck test test-unit test-int test-e2e test-manifests test-k8s
lint: deps ## Biome (lint + format) and buf lint
	@biome ci --colors=off .
	@buf lint

typecheck: deps client ## tsc over the whole workspace (the examples need the built SDK's declarations)
	@tsc -p tsconfig.json

.PHONY: client
client: deps ## Builds the SDK, @ctx/client, into clients/typescript/dist (JS + declarations)
	@pnpm --dir clients/typescript --silent run build

test: check-generated lint typecheck breaking test-manifests $(GRPCURL) $(CHROMIUM) $(PDFTOTEXT) ## Every check: generated code, lint, types, buf breaking, all test suites
	@vitest run

test-manifests: deps ## Renders every k8s/ overlay, validates it offline (schemas, policies, nats.conf): deploy/k8s/check.sh
	@deploy/k8s/check.sh

test-k8s: deps ## The prod overlay on a real Kubernetes control plane (apply, roll-out, drain, upgrade): deploy/k8s/control-plane.sh, test/k8s
	@deploy/k8s/control-plane.sh install
	@vitest run --config test/k8s/vitest.config.ts

test-unit: deps ## Unit tests only (no servers)
	@vitest run --project unit

test-int: deps $(GRPCURL) $(PDFTOTEXT) ## Integration tests only (starts its own servers)
	@vitest run --project integration

test-e2e: deps $(CHROMIUM) ## End-to-end tests only (starts its own servers)
	@vitest run --project e2e

# --- container images ------------------------------------------------------------------------------

.PHONY: images test-images test-pods
images: deps ## OCI images of command, query, projector and ctx in .build/images, without Docker (docs/DEPLOYMENT.md)
	@deploy/images/build.sh

test-images: images ## Builds the images again (same digests?) and runs them under podman against a NATS (root)
	@IMAGES_DIR=.build/images-again deploy/images/build.sh >/dev/null
	@if ! diff .build/images/images.json .build/images-again/images.json; then \
	  echo "the images are not reproducible: a second build gave other digests" >&2; exit 1; \
	fi
	@rm -rf .build/images-again
	@echo "reproducible: a second build gave the same digests"
	@deploy/images/smoke.sh

test-pods: images ## The dev overlay's command, query and projector pods under podman (kube play) against the local stores; the demo through them (root)
	@deploy/k8s/pods.sh

# --- running the system -------------------------------------------------------------------------------

.PHONY: up down reset status bench soak
up: deps ## Starts NATS, Valkey, Neo4j and the services on 127.0.0.1 (detached), runs the demo, prints where things listen
	@if [ "$${LOCAL_SERVERS:-1}" != 0 ]; then deploy/local/stack.sh up; fi
	@deploy/local/services.sh ctx provision
	@deploy/local/services.sh start
	@deploy/local/services.sh ctx demo
	@$(MAKE) status
	@echo
	@deploy/local/services.sh token
	@echo "Stop it:   make down   (data stays in .stack/local; make reset deletes it)"

down: ## Stops what `make up` started, by pid; data is kept in .stack/local
	@deploy/local/services.sh stop
	@deploy/local/stack.sh down

reset: down ## Stops the local stack and deletes its data (.stack/local): the next make up starts empty
	@rm -rf .stack/local

status: ## Shows what is running and where
	@deploy/local/stack.sh status || true
	@deploy/local/services.sh status || true

# Each benchmark is a script under bench/ that starts its own servers on free ports, prints a table and
# writes bench/results/<name>.json; they run one after another, in this order.
BENCHES := bench/write-side.ts bench/query-side.ts bench/upcasting.ts bench/projection.ts bench/story-cache-memory.ts bench/durability.ts bench/backup-restore.ts bench/audit.ts bench/cold-load.ts bench/storage.ts

bench: deps ## Benchmarks, one script after another (see docs/BENCHMARKS.md)
	@for b in $(BENCHES); do echo "== $$b"; node "$$b"; done

soak: deps ## The soak run: 4 replicas per projector model under load for 10 min (SOAK_MINUTES), consumers, leases and RSS over time
	@node bench/soak.ts
