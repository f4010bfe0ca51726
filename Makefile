# keysync: `make demo` runs the local demo, `make test` runs every test (what CI runs).
GO        ?= go
BIN       := bin/keysync
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)

IMAGE     ?= ghcr.io/sigil-dna/keysync
FLAVORS   := $(shell sh build/flavor-tags.sh --list)

.PHONY: build build-demo flavors images test test-fast lint demo bench bench-fleet bench-fleet-aws bench-footprint bench-scale bench-attack bench-soak bench-images fuzz clean

# The full build: every store (build/flavor-tags.sh full).
build:
	CGO_ENABLED=0 $(GO) build -tags "$$(sh build/flavor-tags.sh full)" -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/keysync

# One slim binary per store family (the file store and that family), and the full one.
flavors: build $(FLAVORS:%=bin/keysync-%)

bin/keysync-%: FORCE
	CGO_ENABLED=0 $(GO) build -tags "$$(sh build/flavor-tags.sh $*)" -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/keysync

.PHONY: FORCE
FORCE:

# One image per flavor from the one Dockerfile: IMAGE:VERSION (full) and IMAGE:VERSION-FLAVOR.
images:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .
	for f in $(FLAVORS); do docker build --build-arg VERSION=$(VERSION) --build-arg FLAVOR=$$f -t $(IMAGE):$(VERSION)-$$f . || exit 1; done

# The local demo is a binary of its own (never in the image); it runs bin/keysync as the sidecars.
build-demo: build
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/keysync-demo ./cmd/keysync-demo

# The whole suite: lint, the Node tests, then every Go test with the race detector. The
# scripts in test/servers first obtain the real servers and tools the tests use (Vault,
# etcd, kube-apiserver, kubectl and the node's kubelet, kube-scheduler,
# kube-controller-manager and kube-proxy, helm, staticcheck, TypeScript, Prometheus, a
# Docker engine from Debian's docker.io package and Docker Compose): built
# once per machine from the Go module proxy (the first time takes 40-60 minutes on 2 cores),
# cached in $${KEYSYNC_TESTBIN:-~/.cache/keysync/testbin} and reused after; node.sh installs
# containerd, runc and the CNI plugins from Debian's packages (the node tests run as root).
# The app libraries are modules of their own (an app importing reload inherits none of the
# rotator's or the tests' requirements); every target runs over each module.
LIBS := keyring reload reload/reloadprom
MODULES := . $(LIBS)
each = for m in $(MODULES); do (cd $$m && $(1)) || exit 1; done

test: lint
	cd reload/node && node --test test/*.test.js
	vault=$$(bash test/servers/vault.sh) && \
	kube=$$(bash test/servers/node.sh) && \
	helm=$$(bash test/servers/helm.sh) && \
	tsc=$$(bash test/servers/typescript.sh) && \
	prom=$$(bash test/servers/prometheus.sh) && \
	docker=$$(bash test/servers/docker.sh) && \
	KEYSYNC_VAULT_BIN=$$vault KUBEBUILDER_ASSETS=$$kube KEYSYNC_NODE_ASSETS=$$kube KEYSYNC_HELM_BIN=$$helm KEYSYNC_TSC=$$tsc KEYSYNC_PROMETHEUS_DIR=$$prom KEYSYNC_DOCKER_DIR=$$docker \
	$(GO) test -race -count=1 -timeout 30m ./... && \
	for m in $(LIBS); do (cd $$m && $(GO) test -race -count=1 ./...) || exit 1; done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(call each,$(GO) vet ./...)
	sc=$$(bash test/servers/staticcheck.sh) && $(call each,$$sc ./...)
	@$(call each,$(GO) mod tidy -diff >/dev/null || { echo "go mod tidy changes $$m/go.mod or go.sum: run it there and commit"; exit 1; })

demo: build-demo
	./bin/keysync-demo

# The packages that need no server of the test cache (about 45 s warm; only TypeScript, for
# the typings' compile check, is fetched from npm into the cache if it is not there): a
# first check of a change before `make test` has the servers. test/README.md maps the rest.
FAST := ./sidecar/... ./rotate/... ./internal/... ./store ./store/file/... \
	./store/awsssm/... ./store/awssm/... ./store/gcpsm/... ./demo/... ./harness/... ./cmd/... ./test/awsfake
test-fast:
	$(GO) test -count=1 $(FAST) ./test/nodelib && \
	for m in $(LIBS); do (cd $$m && $(GO) test -count=1 ./...) || exit 1; done

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./store/awsssm/ ./store/awssm/
	cd reload && $(GO) test -run '^$$' -bench . -benchmem -count 5 .
	cd keyring && $(GO) test -run '^$$' -bench . -benchmem -count 5 .
	node reload/node/test/bench.js

# The fleet benchmark and chaos suite with its defaults: 20 pods x 200 rotations per
# scheme against a real Vault (about 25 minutes); rewrites its section of docs/benchmarks.md.
bench-fleet: build
	vault=$$(bash test/servers/vault.sh) && \
	KEYSYNC_VAULT_BIN=$$vault $(GO) run ./test/fleet --keysync $(BIN) --report docs/benchmarks.md

# The same against Parameter Store (the kumo emulator, in process) and Secrets Manager (the
# fake, in process): 20 pods x 100 staged rotations each (about 7 minutes each).
bench-fleet-aws:
	$(GO) run ./test/fleet --store ssm --pods 20 --rotations 100 --naive=false --store-outage 0 --report docs/benchmarks.md --section fleet-ssm
	$(GO) run ./test/fleet --store secretsmanager --pods 20 --rotations 100 --naive=false --store-outage 0 --report docs/benchmarks.md --section fleet-secretsmanager

# The footprint of a sidecar of each flavor polling its store's real test server for 60 s
# (binary size, resident memory from /proc/PID/smaps_rollup, CPU per poll); rewrites the
# footprint section of docs/benchmarks.md, which the chart's memory figures follow.
bench-footprint: flavors
	vault=$$(bash test/servers/vault.sh) && kube=$$(bash test/servers/kube.sh) && \
	KEYSYNC_VAULT_BIN=$$vault KUBEBUILDER_ASSETS=$$kube $(GO) run ./test/footprint --bin bin --report docs/benchmarks.md

# The five attacks of issue 28 on the file build's status port (about 2 minutes): memory,
# open files, a rotation reaching the app during each; rewrites the attacks section.
# Three "years" of monthly gated rotations from a CronJob-like scheduler over a real Vault,
# with a chaos calendar (about 28 minutes); rewrites the soak section of docs/benchmarks.md.
bench-soak: build
	vault=$$(bash test/servers/vault.sh) && \
	KEYSYNC_VAULT_BIN=$$vault $(GO) run ./test/fleet --keysync $(BIN) --soak 36 --soak-month 45s --pods 6 --rate 60 --report docs/benchmarks.md

bench-attack: bin/keysync-file
	$(GO) run ./test/attack --bin bin/keysync-file --flavor file --report docs/benchmarks.md

# How cost grows with the fleet: 20, 200, 1000 and 2000 sidecars (in process) against each
# real test server; rewrites the scale section of docs/benchmarks.md (about 30 minutes).
bench-scale:
	vault=$$(bash test/servers/vault.sh) && kube=$$(bash test/servers/kube.sh) && \
	KEYSYNC_VAULT_BIN=$$vault KUBEBUILDER_ASSETS=$$kube $(GO) run ./test/scale/run --report docs/benchmarks.md

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./keyring/

clean:
	rm -rf bin

# The size of every flavor's image and the demo's, built from the real Dockerfile by a
# real Docker engine (test/docker; root): rewrites the image-sizes section of docs/benchmarks.md.
bench-images:
	vault=$$(bash test/servers/vault.sh) && docker=$$(bash test/servers/docker.sh) && \
	KEYSYNC_VAULT_BIN=$$vault KEYSYNC_DOCKER_DIR=$$docker $(GO) run ./test/docker/sizes --report docs/benchmarks.md
