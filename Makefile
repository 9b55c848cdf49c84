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

# Every fuzz target of the module (found with go test -list), one after
# another, FUZZTIME each; FUZZFLAGS goes to go test (e.g. -parallel=1).
# A crash fails the run, and go test leaves the input that caused it in
# the package's testdata/fuzz/FuzzName/: commit it, it then runs as a
# regression test in `make test`. Prints executions per target at the end.
FUZZTIME ?= 30s
FUZZFLAGS ?=
fuzz:
	@targets=$$($(GO) test -list '^Fuzz' ./... | awk '/^Fuzz/ { t[++n] = $$1 } /^ok/ { for (i = 1; i <= n; i++) print $$2 "," t[i]; n = 0 }') || exit 1; \
	test -n "$$targets" || { echo "fuzz: no fuzz targets found"; exit 1; }; \
	log=$$(mktemp); summary=$$(mktemp); failed=0; \
	for pt in $$targets; do \
		pkg=$${pt%,*}; fn=$${pt#*,}; \
		echo "fuzz: $$pkg $$fn for $(FUZZTIME)"; \
		if $(GO) test $(FUZZFLAGS) -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) "$$pkg" >$$log 2>&1; then st=ok; else st=FAIL; failed=1; cat $$log; fi; \
		execs=$$(grep -o 'execs: [0-9]*' $$log | tail -n 1 | cut -d ' ' -f 2); \
		printf '%-48s %-24s %12s %s\n' "$$pkg" "$$fn" "$${execs:-0}" "$$st" >>$$summary; \
	done; \
	printf '%-48s %-24s %12s %s\n' package target executions result; cat $$summary; \
	rm -f $$log $$summary; \
	if [ $$failed = 1 ]; then echo "fuzz: failing inputs are in testdata/fuzz/ of the packages above; commit them"; exit 1; fi
