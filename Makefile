GO ?= go

.PHONY: all build test vet crypto-paths demo bench fuzz

all: build

build:
	$(GO) build -o gotatun ./cmd/gotatun

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

# The test suite: formatting, vet, and every test with the race detector.
# Linux end-to-end tests need root; they skip with a reason elsewhere and
# fail when CI=true.
test: vet crypto-paths
	$(GO) test -race -timeout 25m ./...

# The crypto test vectors on every implementation, verbose so that the log
# shows which one New picks here and which paths this machine skipped, and why.
crypto-paths:
	$(GO) test -count=1 -v -run 'TestNewPicks|TestWycheproof|TestRFC8439' ./noise/chachapoly ./noise

demo:
	$(GO) run ./cmd/gotatun demo

# Benchmarks against wireguard-go in network namespaces plus in-process Go
# benchmarks; needs root, iperf3, ping, wg. Writes docs/benchmarks.{md,json,svg}.
bench:
	$(GO) run ./bench
