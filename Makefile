# Switchboard: the two commands a newcomer needs are `make run` and `make test`.
# Both install what is missing first (as root), or print the exact command to run and stop.

SHELL := /bin/bash
GO ?= go
# System packages the build and the tests need (cgo codecs, pixel formats, browser tests).
DEB_PACKAGES := gcc make pkg-config libopus-dev libvpx-dev libyuv-dev chromium
GOFLAGS_TEST ?= -race -timeout 20m

.PHONY: run test deps check-go lint unit bench fmt fuzz test-debug

## run: start the service with the echo bot and print the URL to open.
run: deps
	$(GO) run ./cmd/switchboard demo

## test: everything CI runs: formatting, vet, staticcheck, and all tests under the race detector.
test: deps lint unit

deps: check-go
	@missing=(); for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing+=($$p); done; \
	if [ $${#missing[@]} -gt 0 ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing: $${missing[*]}"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $${missing[*]} >/dev/null || exit 1; \
		else \
			echo "missing system packages; run as root:"; \
			echo "  apt-get update && apt-get install -y $${missing[*]}"; \
			exit 1; \
		fi; \
	fi

check-go:
	@command -v $(GO) >/dev/null || { echo "Go 1.26 or newer is needed: https://go.dev/doc/install"; exit 1; }

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

unit:
	$(GO) test $(GOFLAGS_TEST) ./...

## bench: the Go benchmarks, then 50 echo calls for 20 s through the service (switchboard-load;
## docs/load.md), summed up in one table. BENCHTIME shortens or lengthens the benchmarks.
BENCHTIME ?= 200ms
bench: deps
	@set -e; d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./... | tee "$$d/go.txt"; \
	$(GO) build -o "$$d/switchboard-load" ./cmd/switchboard-load; \
	"$$d/switchboard-load" -spawn -bot echo -calls 50 -rate 20 -duration 20s -json > "$$d/load.json" || true; \
	echo; echo "== summary"; "$$d/switchboard-load" summary "$$d/go.txt" "$$d/load.json"

fmt:
	gofmt -w $$(git ls-files '*.go')

## fuzz: run every fuzz target for FUZZTIME each (seeds always run as part of `make test`).
FUZZTIME ?= 20s
fuzz: deps
	@for f in $$(grep -rl --include='*_test.go' '^func Fuzz' .); do d=$$(dirname $$f); \
	  for fn in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | cut -d' ' -f2); do \
	    echo "== $$d $$fn"; $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 3s $$d || exit 1; \
	  done; done

## test-debug: the tests with buffer use-after-release checks on, without the race detector.
test-debug: deps
	$(GO) test -tags switchboard_debug ./...
