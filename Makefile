# Switchyard. `make demo` runs a local lab; `make test` runs every test.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/switchyard
# Integration tests start real redis-server/redis-sentinel processes.
TEST_TIMEOUT ?= 20m

.PHONY: build test test-short test-deploy deploy-render demo demo-check bench lint fuzz image clean redis-deps

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/switchyard

test: redis-deps
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	# The data path again with a goroutine per client (proxy.Config.NoEventLoop).
	SWITCHYARD_TEST_NO_EVENT_LOOP=1 $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./proxy/
	# And with the event loop making a system call per client read and
	# write, as where io_uring is unavailable (proxy.Config.NoIOUring).
	SWITCHYARD_TEST_NO_IO_URING=1 $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./proxy/

# The deploy module (Helm chart, rendered manifests, sidecar example, image
# checks) is a Go module of its own, so `go test ./...` above does not
# enter it. Its first run downloads Helm and the Kubernetes API types.
test-deploy:
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 ./...

# Rewrites deploy/rendered/ after a change to the chart or a values file.
deploy-render:
	cd deploy && $(GO) generate ./...

# Unit tests only: no Redis processes.
test-short:
	$(GO) test -short -count=1 ./...

# Runs each fuzz target for FUZZTIME.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReadCommand$$' -fuzztime $(FUZZTIME) ./resp/
	$(GO) test -run '^$$' -fuzz '^FuzzReadReply$$' -fuzztime $(FUZZTIME) ./resp/

redis-deps:
	@command -v redis-server >/dev/null && command -v redis-sentinel >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing redis-server, redis-sentinel and redis-tools with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-sentinel redis-tools >/dev/null; \
	  else \
	    echo "redis-server and redis-sentinel are needed: sudo apt-get install redis-server redis-sentinel redis-tools" >&2; exit 1; \
	  fi; }

demo: redis-deps build
	$(GO) run ./cmd/demo -switchyard $(BIN)

# The demo, non-interactive: it exits after the failover (CI runs it).
demo-check: redis-deps build
	$(GO) run ./cmd/demo -switchyard $(BIN) -exit

bench: redis-deps build
	$(GO) run ./bench/harness -switchyard $(BIN)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	# The binary builds off Linux too (no event loop there: loop_other.go).
	GOOS=darwin $(GO) build -o /dev/null ./cmd/switchyard
	GOOS=windows $(GO) build -o /dev/null ./cmd/switchyard

# The container image (needs docker, or DOCKER=podman). deploy's tests
# check what can be checked without an engine: make test-deploy.
DOCKER ?= docker
IMAGE  ?= switchyard
image:
	$(DOCKER) build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(VERSION) .

clean:
	rm -rf bin
