GO ?= go

.PHONY: all build test vet lint crypto-paths demo bench fuzz

all: build

build:
	$(GO) build -o gotatun ./cmd/gotatun

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

# The test suite: formatting, vet, and every test with the race detector.
# Linux end-to-end tests need root; they skip with a reason elsewhere and
# fail when CI=true.
test: vet lint crypto-paths
	$(GO) test -race -timeout 25m ./...

# staticcheck, pinned and fetched through the Go module proxy; builds for
# -tags purego (x/crypto everywhere), 386 and arm64. govulncheck is not run:
# it needs vuln.go.dev, which CI cannot reach.
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	$(GO) run $(STATICCHECK) ./...
	$(GO) build -tags purego ./...
	$(GO) test -count=1 -tags purego ./noise/...
	GOARCH=386 $(GO) vet ./...
	GOARCH=arm64 $(GO) build ./...

# The crypto test vectors on every implementation, verbose so that the log
# shows which one New picks here and which paths this machine skipped, and why.
crypto-paths:
	$(GO) test -count=1 -v -run 'TestNewPicks|TestWycheproof|TestRFC8439' ./noise/chachapoly ./noise
	$(GO) test -count=1 -v -tags purego -run 'TestNewPicks|TestWycheproof|TestRFC8439' ./noise/chachapoly ./noise

demo:
	$(GO) run ./cmd/gotatun demo

# Benchmarks against wireguard-go in network namespaces plus in-process Go
# benchmarks; needs root, iperf3, ping, wg. Writes docs/benchmarks.{md,json,svg}.
bench:
	$(GO) run ./bench
