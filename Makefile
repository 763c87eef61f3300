# skillbuild — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN ?= bin/skillbuild
ROOTFS ?= /var/cache/skillbuild/rootfs-bookworm
BASE_REF ?= localhost/skillbuild/python:3.11-bookworm
DEMO_DIR ?= /tmp/skillbuild-demo
TESTFLAGS ?= -count=1 -timeout 60m
# The cosign the signing tests check interoperability with (built once,
# cached by version); hack/cosign.version is the one place it is pinned.
COSIGN_VERSION ?= $(shell cat hack/cosign.version)
COSIGN_CACHE ?= /var/cache/skillbuild

.PHONY: help
help: ## show this help
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z0-9_-]+:.*## /{printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## install containerd, runc, debootstrap and Debian's wheels if missing (apt)
	@hack/deps.sh

.PHONY: base-rootfs
base-rootfs: deps ## build the offline python base rootfs once (cached in $(ROOTFS))
	@hack/base-rootfs.sh $(ROOTFS)

.PHONY: cosign
cosign: ## build the pinned cosign the signing tests run, once (cached in $(COSIGN_CACHE)/cosign-$(COSIGN_VERSION))
	@hack/cosign.sh $(COSIGN_VERSION) $(COSIGN_CACHE)

.PHONY: build
build: ## build bin/skillbuild (and bin/skillbuild-init, the small static init a run's container starts with)
	$(GO) build -buildvcs=auto -o $(BIN) .
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -o $(BIN)-init ./runtime/pid1/cmd/skillbuild-init

.PHONY: lint
lint: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The integration suite's core: what the containerd 2.x lane runs again
# (TestMain checks for leftovers after any selection).
CORE_TESTS ?= ^(TestVersion|TestInstallConflictingVersionsEachGetTheirs|TestInstallImageShape|TestInstallStepOverMemoryLimitFails|TestRunSkillImage|TestRunAPI|TestRunLimitsAndInterrupt|TestRunHostile|TestServeAPI|TestServeHostile|TestSessionCallsKeepState|TestSessionEnds|TestRegistryPushPullRunOnAnotherHost|TestRootless|TestLsListsSkillImages|TestPruneFreesUnsharedKeepsShared)$$

.PHONY: test
test: base-rootfs cosign lint ## run every test: unit and integration (host containerd), the core again on containerd 2.x, and the cgroup v2 VM lanes; then the ten slowest
	$(GO) build -o bin/testreport ./hack/testreport
	SKILLBUILD_INTEGRATION=1 SKILLBUILD_TEST_ROOTFS=$(ROOTFS) bin/testreport -slowest 10 -- $(GO) test -json $(TESTFLAGS) ./...
	cd clients/python && PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests -t .
	$(MAKE) --no-print-directory test-containerd2
	$(MAKE) --no-print-directory test-cgroup2

.PHONY: containerd2
containerd2: ## build containerd, its shim and ctr at go.mod's client version once (cached in /var/cache/skillbuild)
	@hack/containerd2.sh

.PHONY: test-containerd2
test-containerd2: base-rootfs ## the integration suite's core against containerd 2.x (go.mod's client version, built by hack/containerd2.sh)
	dir=$$(hack/containerd2.sh) && SKILLBUILD_TEST_CONTAINERD=$$dir SKILLBUILD_INTEGRATION=1 SKILLBUILD_TEST_ROOTFS=$(ROOTFS) \
	  $(GO) test $(TESTFLAGS) -run '$(CORE_TESTS)' -skip '^TestRunHostile$$/^gvisor$$' ./integration

.PHONY: test-cgroup2
test-cgroup2: base-rootfs ## boot a cgroup v2 VM (QEMU) and run the cgroup v2 tests in it, without systemd and with it
	ROOTFS=$(ROOTFS) hack/vm/run.sh

.PHONY: unit
unit: ## unit tests only: no root, no containerd (the integration suite skips under -short)
	$(GO) test -short -count=1 ./...
	cd clients/python && PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests -t .

.PHONY: demo
demo: base-rootfs build ## build two skills with conflicting versions of a package and run Python in each
	@hack/demo.sh $(BIN) $(DEMO_DIR) $(ROOTFS) $(BASE_REF)

.PHONY: bench
bench: base-rootfs build ## benchmarks against host pip, buildah, ctr and podman; writes BENCHMARKS.md
	SKILLBUILD_TEST_ROOTFS=$(ROOTFS) $(GO) run ./hack/bench -bin $(BIN) -rootfs $(ROOTFS) -out BENCHMARKS.md

.PHONY: bench-quick
bench-quick: base-rootfs build ## the benchmark for iteration: 3 runs a row, no 30-distribution rows, report on stdout only
	SKILLBUILD_TEST_ROOTFS=$(ROOTFS) $(GO) run ./hack/bench -bin $(BIN) -rootfs $(ROOTFS) -runs 3 -skip-30 -out ''

.PHONY: docs
docs: ## regenerate docs/cli.md from the CLI
	SKILLBUILD_UPDATE_DOCS=1 $(GO) test -run TestCLIDocsUpToDate ./cli

.PHONY: clean
clean: ## remove build output and stop the demo containerd
	rm -rf bin
	-@[ -f $(DEMO_DIR)/containerd/containerd.pid ] && kill $$(cat $(DEMO_DIR)/containerd/containerd.pid) 2>/dev/null; true
