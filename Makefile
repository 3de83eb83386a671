# agent-data-plane for ARMv7 — the Nix-free build path.
#
# Target names mirror the flake's outputs (packages.adp-armv7, checks.adp-test-armv7, ...);
# both call the same checks/ scripts and the same packaging tool (bin/adp-package).
# Every recipe prints the commands it runs.
#
# Each script a flake check runs, make runs under that check's builder conditions
# (checks/lib/builder-sandbox.sh: unprivileged user, read-only inputs, no HOME, no
# network, fresh TMPDIR, PATH = the tools checks/tools.json declares for it; the
# flake reads the same file), so what the Nix sandbox would reject fails here too.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ARMV7_TARGET  := armv7-unknown-linux-gnueabihf
ARMV7_BIN     := target/$(ARMV7_TARGET)/release/agent-data-plane
HOST_BIN      := target/release/agent-data-plane
ARMV7_RUNNER  := qemu-arm -L /usr/arm-linux-gnueabihf
RESULT        := result-adp-armv7
SANDBOX       := checks/lib/builder-sandbox.sh
# The shipped armv7 binary, as the flake's checks take it: out of the release tarball.
SHIPPED       := tar -xzf "$$armv7"/agent-data-plane-*-linux-armv7.tar.gz usr/bin/agent-data-plane
RELEASE       := result-release
ARCHES        := armv7 arm64 amd64

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: setup
setup: ## Install the Debian toolchain (root, bookworm; idempotent)
	checks/setup-debian.sh

# --- tests -------------------------------------------------------------------

.PHONY: fmt
fmt: ## Format the workspace
	cargo fmt --all

.PHONY: clippy
clippy: ## Lint the workspace with warnings denied
	cargo clippy --workspace --all-targets --locked -- -D warnings

.PHONY: test
test: ## Host: fmt --check, clippy -D warnings, workspace tests
	checks/test-host.sh

.PHONY: test-armv7
test-armv7: ## The whole workspace test suite for armv7 (Rust 1.85) under qemu-arm
	checks/test-armv7.sh

# Offline: reads the crates' manifests from cargo's cache, which any build of
# the workspace fills (in `make check` it runs after `make test`).
# As crane runs checks.adp-licences: a writable copy of the sources, the crates
# vendored read-only (checks/lib/vendor-crates.sh) as cargo's only source.
.PHONY: licences
licences: ## Dependency licences and sources against deny.toml (offline)
	checks/lib/vendor-crates.sh target/builder-sandbox/vendor
	$(SANDBOX) run licences --input vendor=target/builder-sandbox/vendor \
		--input src=Cargo.toml:Cargo.lock:crates:bin:deny.toml:checks -- \
		'cp -r --no-preserve=mode "$$src" source && cd source && mkdir "$$TMPDIR/cargo-home" && \
		printf "[source.crates-io]\nreplace-with = \"vendored\"\n[source.vendored]\ndirectory = \"%s\"\n" "$$vendor" \
			>"$$TMPDIR/cargo-home/config.toml" && \
		CARGO_HOME=$$TMPDIR/cargo-home bash checks/licences.sh'

# --- binaries ----------------------------------------------------------------

.PHONY: adp
adp: ## Native release build of the agent (and its test tools)
	cargo build --release --locked -p agent-data-plane -p adp-test-intake -p adp-package -p adp-loadgen

.PHONY: agent-data-plane
agent-data-plane: ## The native release binary alone and its version line (nix run .#agent-data-plane -- version)
	cargo build --release --locked -p agent-data-plane
	target/release/agent-data-plane version

.PHONY: agent-data-plane-armv7
agent-data-plane-armv7: ## The armv7 release binary alone (Rust 1.85, cross)
	checks/cargo-armv7.sh build --release --locked -p agent-data-plane
	file $(ARMV7_BIN)

# --- artifacts ---------------------------------------------------------------

# Each architecture alone: tarball, .deb, OCI image, debug info, provenance
# and SHA256SUMS into result-adp-ARCH/ (checks/build-adp.sh ARCH).
.PHONY: adp-armv7
adp-armv7: ## armv7: reproducible tarball, .deb, OCI image, provenance into result-adp-armv7/
	checks/build-adp.sh armv7

.PHONY: adp-arm64
adp-arm64: ## arm64 (cross, Rust 1.85): the same into result-adp-arm64/
	checks/build-adp.sh arm64

.PHONY: adp-amd64
adp-amd64: ## amd64 (native, Debian's Rust 1.85): the same into result-adp-amd64/
	checks/build-adp.sh amd64

.PHONY: release
release: ## All three architectures, then result-release/: their tarballs and .debs, one multi-platform OCI index, provenance
	checks/build-release.sh

PACKAGED_BIN  := target/adp-armv7-package/agent-data-plane

# The artifact checks read what `make release` wrote (result-adp-armv7/ and
# result-release/); run that first. Each runs its script under builder
# conditions with the command text of its flake twin (nix/checks.nix).
.PHONY: elf
elf: ## ELF checks on each shipped binary: glibc <= 2.36, class/machine (EABI5 hard-float), interpreter, no rpath, NEEDED
	$(SANDBOX) run elf --input release=$(RELEASE) -- \
		'for arch in $(ARCHES); do tar -xzf "$$release"/agent-data-plane-*-linux-$$arch.tar.gz usr/bin/agent-data-plane; checks/elf.sh usr/bin/agent-data-plane $$arch; done'

.PHONY: size
size: ## Size gate on the stripped armv7 binary
	$(SANDBOX) run size --input armv7=$(RESULT) -- '$(SHIPPED); checks/size.sh usr/bin/agent-data-plane'

.PHONY: oci
oci: ## OCI validity (skopeo, umoci, platforms, non-root user) of armv7's image and the release's index; file modes
	$(SANDBOX) run oci --input armv7=$(RESULT) --input release=$(RELEASE) -- \
		'checks/oci.sh "$$armv7"; checks/oci.sh "$$release"; checks/modes.sh "$$release"'

.PHONY: deb
deb: ## The three .debs: dpkg-deb fields, Depends against readelf, conffile, scripts, lintian (no error or warning)
	$(SANDBOX) run deb --input release=$(RELEASE) -- 'checks/deb.sh "$$release"'

.PHONY: image-smoke
image-smoke: ## Smoke-test each image's own rootfs (its glibc): arm/v7 under qemu-arm, arm64 under qemu-aarch64, amd64 natively
	cargo build --locked -p adp-test-intake
	$(SANDBOX) run image-smoke --input release=$(RELEASE) --input intake=target/debug/adp-test-intake -- \
		'export ADP_TEST_INTAKE=$$intake && checks/image-smoke.sh "$$release"'

# Slow (a bookworm armhf root under qemu-arm; ~10 min the first time, then
# ~5), so not in `make check`.
.PHONY: deb-install-test
deb-install-test: ## Install, run, upgrade and purge the armhf .deb in a bookworm armhf root (debootstrap + qemu-arm)
	test -f $(RESULT)/SHA256SUMS || checks/build-adp.sh armv7
	cargo build --locked -p adp-test-intake
	checks/deb-install-test.sh $(RESULT)

.PHONY: reproducibility
reproducibility: ## Build the release twice from two clean copies and compare digests (ADP_RELEASE_ARCHES to limit)
	checks/reproducibility.sh

# --- smoke -------------------------------------------------------------------

# The smoke checks use the debug host build of the test intake (already built
# by the tests); the host agent is the debug build too, the armv7 agent the
# release build that ships.
.PHONY: smoke
smoke: ## Run the host agent against the test intake
	cargo build --locked -p agent-data-plane -p adp-test-intake
	$(SANDBOX) run smoke --input adp=target/debug/agent-data-plane:target/debug/adp-test-intake -- \
		'export ADP_TEST_INTAKE=$$adp/adp-test-intake && checks/smoke.sh "$$adp"/agent-data-plane'

.PHONY: loadgen-smoke
loadgen-smoke: ## Load generator against the agent (debug build): exact counts, zero decode errors
	cargo build --locked -p agent-data-plane -p adp-test-intake -p adp-loadgen
	$(SANDBOX) run loadgen-smoke \
		--input adp=target/debug/agent-data-plane:target/debug/adp-test-intake:target/debug/adp-loadgen -- \
		'checks/loadgen-smoke.sh "$$adp"'

.PHONY: smoke-armv7
smoke-armv7: ## Run the shipped armv7 agent (make adp-armv7's) under qemu-arm against the test intake
	test -x $(PACKAGED_BIN) || checks/build-adp-armv7.sh
	cargo build --locked -p adp-test-intake
	$(SANDBOX) run smoke-armv7 --input agent=$(PACKAGED_BIN) --input intake=target/debug/adp-test-intake -- \
		'export ADP_TEST_INTAKE=$$intake && checks/smoke.sh "$$agent" $(ARMV7_RUNNER)'

# --- nix (offline) -----------------------------------------------------------

.PHONY: nix-check
nix-check: ## Offline Nix checks: parse, lock completeness, flake/make parity
	checks/nix-offline.sh
	checks/parity.sh

# --- benchmarks (never part of check) ----------------------------------------

.PHONY: bench-codec
bench-codec: ## DogStatsD decode + intern rate (metrics/s/core)
	cargo run --release --locked -p adp-dogstatsd --example bench_codec

.PHONY: bench
bench: adp ## Side-by-side benchmarks; regenerates docs/benchmarks.md
	checks/bench.sh

# The DogStatsD codec fuzz target (fuzz/, see crates/dogstatsd/README.md "Fuzzing"):
# cargo-fuzz (`cargo install cargo-fuzz --locked`) on the stable toolchain through
# RUSTC_BOOTSTRAP, without AddressSanitizer (`-s none`: about 3x the executions per
# second) but with debug assertions and overflow checks. New inputs go to the ignored
# fuzz/corpus/codec; fuzz/seeds/codec holds the committed seeds; crashes land in
# fuzz/artifacts/codec. Never part of `make check`.
FUZZ_RUNS ?= 10000000

.PHONY: fuzz
fuzz: ## Fuzz the DogStatsD codec for FUZZ_RUNS executions (default 10,000,000; needs cargo-fuzz)
	mkdir -p fuzz/corpus/codec
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none codec corpus/codec seeds/codec -- \
		-runs=$(FUZZ_RUNS) -max_len=4096 -print_final_stats=1

# --- everything CI checks ----------------------------------------------------

.PHONY: check
check: ## Everything CI checks (README's test command)
	$(MAKE) nix-check
	$(MAKE) test
	$(MAKE) licences
	$(MAKE) test-armv7
	$(MAKE) smoke loadgen-smoke
	$(MAKE) release
	$(MAKE) elf size oci deb
	$(MAKE) smoke-armv7 image-smoke
	ADP_REPRO_REUSE_A=1 ADP_RELEASE_ARCHES=armv7 $(MAKE) reproducibility
