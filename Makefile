# edgenode build, test and bench. See README.md.
SHELL := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GOFLAGS_REL := -trimpath -ldflags '$(LDFLAGS)'
export CGO_ENABLED := 0
BIN := bin
# Packages whose tests also run as ARMv6 binaries under qemu-arm-static.
# Tests that need root tools (runc, mounts) skip themselves there.
ARMV6_TEST_PKGS ?= ./...

.PHONY: all build armv6 armv7 arm64 amd64 test test-host test-armv6 bench lint clean fuzz image test-board

all: build

build:
	go build $(GOFLAGS_REL) -o $(BIN)/edgenode .

armv6:
	GOOS=linux GOARCH=arm GOARM=6 go build $(GOFLAGS_REL) -o $(BIN)/edgenode-armv6 .

armv7:
	GOOS=linux GOARCH=arm GOARM=7 go build $(GOFLAGS_REL) -o $(BIN)/edgenode-armv7 .

arm64:
	GOOS=linux GOARCH=arm64 go build $(GOFLAGS_REL) -o $(BIN)/edgenode-arm64 .

amd64:
	GOOS=linux GOARCH=amd64 go build $(GOFLAGS_REL) -o $(BIN)/edgenode-amd64 .

# test: host tests with the race detector (needs cgo for -race only), then the
# same tests built for ARMv6 and run under qemu-arm-static.
test: test-host test-armv6

test-host:
	CGO_ENABLED=1 go test -race -count=1 -timeout 20m ./...

test-armv6:
	@command -v qemu-arm-static >/dev/null || { echo "qemu-arm-static missing: apt-get install qemu-user-static"; exit 1; }
	GOOS=linux GOARCH=arm GOARM=6 go test -count=1 -timeout 30m -exec qemu-arm-static $(ARMV6_TEST_PKGS)

fuzz:
	@for p in $$(go list ./...); do \
	  for f in $$(go test -list '^Fuzz' $$p 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$p $$f"; go test -run '^$$' -fuzz "^$$f$$" -fuzztime 20s $$p || exit 1; \
	  done; done

# bench: one table of the budgets (binary size, idle memory on the host and
# under qemu-arm-static, bus, twin, pod start, memory and processes with 0,
# 10 and 30 pods, the emulated Pi Zero's last make test-board) with the
# machine. The pod rows need root and runc. BENCH_FLAGS=-markdown prints
# the table for README.
bench: armv6
	go run ./tools/bench -armv6 $(BIN)/edgenode-armv6 -board $(IMAGE_DIR)/test-board/bench.txt $(BENCH_FLAGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	go vet ./...
	GOARCH=arm GOARM=6 go vet ./...
	GOBIN=$(CURDIR)/$(BIN)/tools go install honnef.co/go/tools/cmd/staticcheck@v0.7.0
	$(BIN)/tools/staticcheck ./...
	GOARCH=arm GOARM=6 $(BIN)/tools/staticcheck ./...
	go mod tidy -diff

# image: the read-only SD card image for a Pi Zero / Pi 1 (and QEMU raspi0)
# in $(IMAGE_DIR). Host packages: image/deps.sh. The first build needs root
# (mmdebstrap, chroot); later builds reuse the cached steps.
IMAGE_DIR ?= $(BIN)/image
image: armv6
	image/build.sh $(BIN)/edgenode-armv6 $(IMAGE_DIR)

# test-board: boot the image under qemu-system-arm -M raspi0 (no NIC) twice
# and run the guest checks (image/test-board.sh). BOARD_BREAK=1 makes one
# guest check fail on purpose; the target must then fail.
test-board: armv6
	IMAGE_TEST=1 image/build.sh $(BIN)/edgenode-armv6 $(IMAGE_DIR)
	BOARD_BREAK=$(BOARD_BREAK) image/test-board.sh $(IMAGE_DIR)

clean:
	rm -rf $(BIN)
