# Strata. `make check` is what CI runs (.ci/run); `make test` is the fast loop.
GO       ?= go
PREFIX   ?= /usr
DESTDIR  ?=
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Where install puts the helper: built into the binaries (units and the udev
# rule run it) and written into the static units and the rule at install.
HELPER   := $(PREFIX)/libexec/strata/strata-helper
LDFLAGS  := -s -w -X main.version=$(VERSION) -X github.com/strata-project/strata/internal/layout.HelperPath=$(HELPER)
# Generator and helper run on diskless nodes at boot: static, no cgo.
export CGO_ENABLED = 0
FUZZTIME ?= 15s

BIN := bin/strata bin/strata-generator bin/strata-helper

.PHONY: all build test check vet golden verify fuzz integration demo bench install setup package man clean check-ceph bench-ceph check-vm bench-vm

all: build

build: $(BIN)

bin/%: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/$*

# The admin-side image tool links librados/librbd (go-ceph, cgo, Debian 12's
# Ceph 16.2 = -tags pacific); nothing that runs on nodes does.
bin/strata-image: FORCE
	CGO_ENABLED=1 $(GO) build -tags pacific -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/strata-image

FORCE:

# Host packages the tests need (systemd-analyze, the nspawn template, ...).
setup:
	./test/setup-host.sh
	./packaging/setup-host.sh
	./test/ceph/setup-host.sh

# .deb and .rpm in dist/ (nfpm run as a Go tool: packaging/README.md).
# STRATA_VERSION overrides git describe.
package:
	packaging/build.sh dist

# Man pages and completions from their sources into build/doc/.
man:
	$(GO) run ./packaging/docgen -out build/doc -version $(VERSION)

test:
	$(GO) test ./...

vet:
	$(GO) vet ./...
	# The suites behind build tags, so a broken one fails in seconds, not
	# after the suites before it have run.
	$(GO) vet -tags integration ./test/...
	$(GO) vet -tags 'integration bench' ./test/integration
	$(GO) vet -tags 'integration demo' ./test/integration
	$(GO) vet -tags vm ./test/vm
	$(GO) vet -tags 'vm bench' ./test/vm
	CGO_ENABLED=1 $(GO) vet -tags 'ceph pacific cephbench' ./image ./cmd/strata-image ./test/ceph
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

# Golden trees and systemd-analyze verify of every generated unit.
golden verify:
	$(GO) test ./generator -run 'TestGolden|TestFormatsAgree|TestVerify' -count=1 -v | grep -E '^(---|ok|FAIL|PASS)' | grep -v '^    ' || true
	$(GO) test ./generator -run 'TestGolden|TestFormatsAgree|TestVerify' -count=1

# Every fuzz target of the repository, found by name (a new one runs without
# editing this), each for FUZZTIME: go test -fuzz takes one target at a time.
fuzz:
	@set -e; for file in $$(git grep -l '^func Fuzz' -- '*_test.go'); do \
		for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
			echo "fuzz ./$$(dirname $$file) $$target"; \
			$(GO) test ./$$(dirname $$file) -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME); \
		done; \
	done

# Real systemd as PID 1 (test/testbed): builds a Debian root with
# debootstrap on first use (~1 min), then each scenario boots in seconds.
# Needs root; fails (never skips) when the testbed cannot be built. One
# package at a time (-p 1): loop devices are the host's, and both packages
# attach the same image file.
# Then the version matrix (docs/COMPATIBILITY.md): the same on Debian 11
# (systemd 247) and 13 (257) roots, cached beside bookworm's, trimmed to the
# scenarios whose behaviour depends on systemd's version: boot and the
# nested container, generation and refusals, reloads and placeholders,
# nspawn's modes, machined, the D-Bus CLI, day two, the package, cgroup v1.
MATRIX_SUITES = bullseye trixie
MATRIX_RUN = ^(TestTestbed|TestCgroupV1Node|TestNestedContainer|TestNodeSystemdVersion|TestLoopbackContainerBootsAndReleases|TestStateRunningStartsAtBoot|TestBrokenBesideGood|TestEditAndRemove|TestPlainCommandExitStatus|TestMachinectl|TestInitCrashRestarts|TestRemoveWhileRunningThenStop|TestCliInsideTestbed|TestCliFromHost|TestPackageInstallUpgradePurge|TestBindScheme|TestFailedStartLeavesNothing)$$
integration:
	./test/gotest.sh -tags integration -count=1 -p 1 -timeout 45m ./test/testbed ./test/integration
	@set -e; for suite in $(MATRIX_SUITES); do \
		echo "integration on $$suite:"; \
		STRATA_TESTBED_SUITE=$$suite ./test/gotest.sh -tags integration -count=1 -p 1 -timeout 45m -run '$(MATRIX_RUN)' ./test/testbed ./test/integration; \
	done

# The README's first command: a demo container from a local loopback image
# on a node with a real systemd (no Ceph). Needs root. Installs only what
# the testbed needs (debootstrap, systemd-container, ...): no Ceph, no
# packaging tools (build.sh runs nfpm with go run).
demo:
	./test/testbed/setup-host.sh
	$(GO) test -tags 'integration demo' -count=1 -timeout 20m -run '^TestDemo$$' -v ./test/integration | grep -v -e '^=== RUN' -e '^    testbed.go'

# A throwaway single-node Ceph cluster on 127.0.0.1 (test/ceph/cluster.sh):
# strata-image builds images into it, read back through librbd and mounted
# through rbd-fuse. Needs root.
check-ceph:
	CGO_ENABLED=1 ./test/gotest.sh -tags 'ceph pacific' -count=1 -p 1 -timeout 15m ./test/ceph ./image ./cmd/strata-image

# The kernel RBD path: Debian's stock kernel under QEMU (TCG), systemd inside,
# a test cluster reached only inside a network namespace of the test's own;
# the seed's definition boots a container from a krbd-mapped image.
# ~6 min warm, ~9 min cold (test/vm/README.md). Needs root.
# Then the krbd path on a second stock kernel, Debian 13's (one boot: the
# seed, the kernel-dependent map options; ~5-8 min, test/vm/README.md).
check-vm:
	./test/gotest.sh -tags vm -count=1 -p 1 -timeout 60m ./test/vm
	STRATA_VM_KERNEL_SUITE=trixie ./test/gotest.sh -tags vm -count=1 -p 1 -timeout 30m -run '^TestRBD$$/^(Seed|KernelMapOptions)$$' ./test/vm

# Whole image build in the VM: strata-image against the seed's manual
# procedure (rbd create, map, mksquashfs onto the device, unmap): ~10 min.
bench-vm:
	$(GO) test -tags 'vm bench' -count=1 -timeout 60m -run TestBuildTime -v ./test/vm

# Upload throughput: strata-image against rbd import (docs/PERFORMANCE.md).
bench-ceph: setup
	./test/ceph/bench-upload.sh

check: setup vet build bin/strata-image
	./test/gotest.sh -count=1 -p 1 ./...
	$(MAKE) fuzz
	$(MAKE) package
	$(MAKE) check-ceph
	$(MAKE) integration
	$(MAKE) check-vm

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./generator ./definition

install: build man
	install -D -m 0755 bin/strata $(DESTDIR)$(PREFIX)/bin/strata
	if [ -x bin/strata-image ]; then install -D -m 0755 bin/strata-image $(DESTDIR)$(PREFIX)/bin/strata-image; fi
	install -D -m 0755 bin/strata-generator $(DESTDIR)$(PREFIX)/lib/systemd/system-generators/strata-generator
	install -D -m 0755 bin/strata-helper $(DESTDIR)$(HELPER)
	for u in units/static/*; do sed 's|$(PACKAGED_HELPER)|$(HELPER)|g' $$u | install -D -m 0644 /dev/stdin $(DESTDIR)$(PREFIX)/lib/systemd/system/$${u##*/}; done
	sed 's|$(PACKAGED_HELPER)|$(HELPER)|g' helpers/krbd/50-strata-rbd.rules | install -D -m 0644 /dev/stdin $(DESTDIR)$(PREFIX)/lib/udev/rules.d/50-strata-rbd.rules
	for p in build/doc/man/*; do install -D -m 0644 $$p $(DESTDIR)$(PREFIX)/share/man/man$${p##*.}/$${p##*/}; done
	install -D -m 0644 build/doc/completions/bash/strata $(DESTDIR)$(PREFIX)/share/bash-completion/completions/strata
	install -D -m 0644 build/doc/completions/zsh/_strata $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_strata
	install -D -m 0644 build/doc/completions/fish/strata.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/strata.fish
	install -d -m 0700 $(DESTDIR)/etc/strata
	install -d -m 0755 $(DESTDIR)$(PREFIX)/lib/strata

# The helper's path as the sources and the package say it (PREFIX=/usr).
PACKAGED_HELPER := /usr/libexec/strata/strata-helper

# A make variable's value, for tests: make -s print-HELPER PREFIX=/opt
print-%:
	@echo '$($*)'

clean:
	rm -rf bin dist build
