# snapbuild — build, demo, test, bench.
#
#   make demo    install what is missing, build, build and run examples/hello
#   make test    install what is missing, build, run unit and integration tests
#   make bench   snapbuild side by side with buildah, parallel stages, layer capture (not part of make test)

# scripts/go runs go.mod's Go version: the go on PATH when it is new enough,
# else a Go that scripts/deps.sh installed, which fetches that version itself.
GO        ?= $(CURDIR)/scripts/go
TAGS      := containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper seccomp
BIN       := bin/snapbuild
export CGO_ENABLED := 1

.PHONY: all build deps demo test unit integration bench vet clean

all: build

build:
	@[ -x $(BIN) ] || echo "make: compiling $(BIN); the first time takes minutes and prints nothing until it is done"
	$(GO) build -tags "$(TAGS)" -o $(BIN) ./cmd/snapbuild

deps:
	@scripts/deps.sh

vet:
	$(GO) vet -tags "$(TAGS)" ./...

demo: deps build
	$(BIN) build examples/hello/hello.yaml
	$(BIN) run hello -- sh -c 'cat /git-version; echo "$$GREETING from $$(pwd)"'

unit:
	$(GO) test -tags "$(TAGS)" -count=1 $$($(GO) list ./... | grep -v /integration)

integration: build
	SNAPBUILD_BIN=$(CURDIR)/$(BIN) $(GO) test -tags "$(TAGS)" -count=1 -timeout 60m -v ./integration/

test: deps build vet unit integration

bench: deps build
	$(GO) run -tags "$(TAGS)" ./bench -bin $(CURDIR)/$(BIN)

clean:
	rm -rf bin
