//! Malformed, oversized and hostile DogStatsD input: counted drops, no panic.
