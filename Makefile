# Strata. `make check` is what CI runs (.ci/run); `make test` is the fast loop.
GO       ?= go
PREFIX   ?= /usr
DESTDIR  ?=
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# Generator and helper run on diskless nodes at boot: static, no cgo.
export CGO_ENABLED = 0
FUZZTIME ?= 15s

BIN := bin/strata bin/strata-generator bin/strata-helper

.PHONY: all build test check vet golden verify fuzz integration demo bench install setup clean

all: build

build: $(BIN)

bin/%: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/$*

FORCE:

# Host packages the tests need (systemd-analyze, the nspawn template, ...).
setup:
	./test/setup-host.sh

test:
	$(GO) test ./...

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

# Golden trees and systemd-analyze verify of every generated unit.
golden verify:
	$(GO) test ./generator -run 'TestGolden|TestFormatsAgree|TestVerify' -count=1 -v | grep -E '^(---|ok|FAIL|PASS)' | grep -v '^    ' || true
	$(GO) test ./generator -run 'TestGolden|TestFormatsAgree|TestVerify' -count=1

fuzz:
	$(GO) test ./definition -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)

# Real systemd as PID 1 (test/testbed): builds a Debian root with
# debootstrap on first use (~1 min), then each scenario boots in seconds.
# Needs root; fails (never skips) when the testbed cannot be built.
integration:
	./test/gotest.sh -tags integration -count=1 -timeout 30m ./test/testbed ./test/integration

# The README's first command: a demo container from a local loopback image
# on a node with a real systemd (no Ceph). Needs root.
demo: setup
	$(GO) test -tags 'integration demo' -count=1 -timeout 20m -run '^TestDemo$$' -v ./test/integration | grep -v -e '^=== RUN' -e '^    testbed.go'

check: setup vet build
	./test/gotest.sh -count=1 ./...
	$(MAKE) fuzz
	$(MAKE) integration

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./generator ./definition

install: build
	install -D -m 0755 bin/strata $(DESTDIR)$(PREFIX)/bin/strata
	install -D -m 0755 bin/strata-generator $(DESTDIR)$(PREFIX)/lib/systemd/system-generators/strata-generator
	install -D -m 0755 bin/strata-helper $(DESTDIR)$(PREFIX)/libexec/strata/strata-helper
	install -d -m 0700 $(DESTDIR)/etc/strata
	install -d -m 0755 $(DESTDIR)$(PREFIX)/lib/strata

clean:
	rm -rf bin
