#!/usr/bin/env bash
# Builds the reproducible ARMv7 release artifacts into result-adp-armv7/: the
# armv7 case of checks/build-adp.sh (see there), kept under its own name for
# `make adp-armv7` and checks/reproducibility.sh.
#
#   checks/build-adp-armv7.sh [--out DIR | --refresh-lock]
exec "$(dirname "$0")/build-adp.sh" armv7 "$@"
