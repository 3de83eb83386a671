#!/usr/bin/env bash
# Runs cargo for armv7-unknown-linux-gnueabihf with the pinned Debian Rust 1.85
# and the arm-linux-gnueabihf cross toolchain; test binaries run under qemu-arm.
# The armv7 case of checks/cargo-cross.sh, kept under its own name because
# most of the project's commands are for this one target.
#
#   checks/cargo-armv7.sh test --workspace
#   checks/cargo-armv7.sh build --release -p agent-data-plane
exec "$(dirname "$0")/cargo-cross.sh" armv7 "$@"
