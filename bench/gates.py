"""ADP's memory gates (shared/reference/benchmarks.md), which the measuring (bench.py)
runs and the report (render.py) compares against: each profile's load, contexts and
agent settings, ADP's published RSS and this project's goal per profile."""

MIB = 1024 * 1024

# Load, contexts, agent settings.
PROFILES = {
    "idle": dict(rate=0, contexts=0, limit=None, interner=None),
    "low": dict(rate=1 * MIB, contexts=3_000, limit=3_100, interner=None),
    "medium": dict(rate=10 * MIB, contexts=10_000, limit=10_100, interner=None),
    "heavy": dict(rate=50 * MIB, contexts=100_000, limit=100_100, interner=32 * MIB),
    "ultraheavy": dict(rate=100 * MIB, contexts=250_000, limit=250_100, interner=64 * MIB),
}
# ADP's published steady RSS (MiB) per profile, its bound, and ours (issue #16): a quarter
# of ADP's where the profile's own data is small; near the data floor (what its strings and
# tag references need, printed by adp-loadgen) where it is not: heavy's floor is ~41 MiB,
# ultraheavy's ~101 MiB.
ADP_OBSERVED = {"idle": 28.0, "low": 42.4, "medium": 65.5, "heavy": 137.0, "ultraheavy": 192.0}
ADP_BOUND = {"idle": 40, "low": 50, "medium": 75, "heavy": 140, "ultraheavy": 200}
GOAL = {"idle": 7, "low": 11, "medium": 16, "heavy": 56, "ultraheavy": 124}
# The peak RSS goal, as a multiple of the steady RSS.
PEAK_GOAL = 1.3
