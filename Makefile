GO ?= go

.PHONY: all build test vet lint vulncheck crypto-paths demo bench fuzz capi cross

all: build

build:
	$(GO) build -o gotatun ./cmd/gotatun

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

# The test suite: formatting, vet, and every test with the race detector.
# Linux end-to-end tests need root; they skip with a reason elsewhere and
# fail when CI=true.
test: vet lint vulncheck crypto-paths capi cross
	$(GO) test -race -timeout 25m ./...

# staticcheck, pinned and fetched through the Go module proxy; builds for
# -tags purego (x/crypto everywhere), 386 and arm64.
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	$(GO) run $(STATICCHECK) ./...
	$(GO) build -tags purego ./...
	$(GO) test -count=1 -tags purego ./noise/...
	GOARCH=386 $(GO) vet ./...
	GOARCH=arm64 $(GO) build ./...

# govulncheck against the Go vulnerability database as of the pinned
# golang.org/x/vulndb module (its OSV files), since vuln.go.dev cannot be
# reached. internal/tools/vulnpolicy fails on any reachable vulnerability in
# a module we depend on; reachable ones in the standard library are listed
# with the Go release that fixes them (the builder's toolchain, not go.mod,
# decides those; VULNFLAGS=-strict-stdlib fails on them too).
GOVULNCHECK = golang.org/x/vuln/cmd/govulncheck@v1.9.0
VULNDB = golang.org/x/vulndb@v0.0.0-20261105234957-e22db6528018
VULNFLAGS ?=
vulncheck:
	$(GO) mod download $(VULNDB)
	mkdir -p build
	$(GO) run $(GOVULNCHECK) -format json -db file://$$($(GO) env GOMODCACHE)/$(VULNDB)/data/osv ./... >build/vulncheck.json
	$(GO) run ./internal/tools/vulnpolicy $(VULNFLAGS) <build/vulncheck.json

# The crypto test vectors on every implementation, verbose so that the log
# shows which one New picks here and which paths this machine skipped, and why.
crypto-paths:
	$(GO) test -count=1 -v -run 'TestNewPicks|TestWycheproof|TestRFC8439' ./noise/chachapoly ./noise
	$(GO) test -count=1 -v -tags purego -run 'TestNewPicks|TestWycheproof|TestRFC8439' ./noise/chachapoly ./noise

# The C library for apps (see capi/gotatun.h): shared and static, with
# the header.
capi:
	mkdir -p build/capi
	$(GO) build -buildmode=c-shared -o build/capi/libgotatun.so ./capi
	$(GO) build -buildmode=c-archive -o build/capi/libgotatun.a ./capi
	rm -f build/capi/libgotatun.h
	cp capi/gotatun.h build/capi/gotatun.h

# Every package for other platforms, without cgo (ios/arm64 links only
# with cgo: its library packages; lint covers linux/386 and linux/arm64),
# the tests of two other systems through vet, and libgotatun.so for
# linux/arm64 with Debian's cross compiler.
CROSS = linux/arm android/arm64 darwin/amd64 darwin/arm64 windows/amd64
cross:
	@set -e; for t in $(CROSS); do \
		echo "go build ./... for $$t"; \
		CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build ./...; \
	done
	@echo "go build (library packages) for ios/arm64"
	@export CGO_ENABLED=0 GOOS=ios GOARCH=arm64; \
		$(GO) build $$($(GO) list -e -f '{{if ne .Name "main"}}{{.ImportPath}}{{end}}' ./...)
	@set -e; for t in darwin/arm64 windows/amd64; do \
		echo "go vet ./... for $$t"; \
		CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet ./...; \
	done
	mkdir -p build/capi/linux-arm64
	CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc \
		$(GO) build -buildmode=c-shared -o build/capi/linux-arm64/libgotatun.so ./capi
	rm -f build/capi/linux-arm64/libgotatun.h
	cp capi/gotatun.h build/capi/linux-arm64/gotatun.h

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
# regression test in `make test`. Prints executions per target as it goes and at the end.
FUZZTIME ?= 30s
FUZZFLAGS ?=
fuzz:
	@list=$$(mktemp); \
	$(GO) test -list '^Fuzz' ./... >$$list 2>&1 || { cat $$list; rm -f $$list; echo "fuzz: go test -list failed"; exit 1; }; \
	targets=$$(awk '/^Fuzz/ { t[++n] = $$1 } /^ok/ { for (i = 1; i <= n; i++) print $$2 "," t[i]; n = 0 }' $$list); rm -f $$list; \
	test -n "$$targets" || { echo "fuzz: no fuzz targets found"; exit 1; }; \
	log=$$(mktemp); summary=$$(mktemp); failed=0; \
	for pt in $$targets; do \
		pkg=$${pt%,*}; fn=$${pt#*,}; \
		if $(GO) test $(FUZZFLAGS) -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) "$$pkg" >$$log 2>&1; then st=ok; else st=FAIL; failed=1; cat $$log; fi; \
		execs=$$(grep -o 'execs: [0-9]*' $$log | tail -n 1 | cut -d ' ' -f 2); \
		line=$$(printf '%-48s %-24s %12s %s' "$$pkg" "$$fn" "$${execs:-0}" "$$st"); \
		echo "fuzz: $$line"; echo "$$line" >>$$summary; \
	done; \
	printf '%-48s %-24s %12s %s\n' package target executions result; cat $$summary; \
	rm -f $$log $$summary; \
	if [ $$failed = 1 ]; then echo "fuzz: failing inputs are in testdata/fuzz/ of the packages above; commit them"; exit 1; fi
