//! The fixed parameters of the Agent's sketch and the mapping between values
//! and bin keys.
//!
//! The Datadog Agent (`pkg/quantile/config.go`) derives everything from three
//! numbers: a relative accuracy `eps = 1/128`, a minimum indexable magnitude of
//! `1e-9` and a limit of 4096 bins. From them:
//!
//! - `gamma = 1 + 2·eps = 1.015625`, and `ln(gamma)` is computed as
//!   `ln_1p(2·eps)`, which is more accurate than `ln(1.015625)`;
//! - `emin = floor(log_gamma(1e-9)) = -1337` and `bias = 1 - emin = 1338`, so
//!   the smallest indexable magnitude, `gamma^emin ≈ 9.94e-10`, gets key 1;
//! - `key(v) = round_half_even(log_gamma(|v|)) + bias`, negated for negative
//!   values, clamped to `1..=32766` and with `32767` standing for "beyond the
//!   largest indexable value" (about `4.1e211`);
//! - zero, and every magnitude below `gamma^emin`, has key 0.
//!
//! The key is a *rounded* logarithm, not a ceiling: a bin with key `k` holds
//! the magnitudes in `[gamma^(e-½), gamma^(e+½))` with `e = k - bias`, and its
//! "lower bound" [`lower_bound`] is `gamma^e`, the centre of that range on a
//! log scale. The constants are written out here (Rust has no `const` `ln`);
//! the tests recompute each one exactly the way the Agent does.

/// Relative accuracy parameter (the Agent's `defaultEps`).
pub const EPS: f64 = 1.0 / 128.0;

/// The base of the logarithmic mapping: `1 + 2·EPS`.
pub const GAMMA: f64 = 1.015625;

/// `ln(GAMMA)`, computed as `ln_1p(2·EPS)` like the Agent.
pub(crate) const GAMMA_LN: f64 = 0.015504186535965254;

/// The smallest magnitude with a non-zero key (`GAMMA^-1337`); anything
/// smaller in magnitude, including zero, maps to key 0.
pub const MIN_INDEXABLE: f64 = 9.94185408912145e-10;

/// The exponent bias: key 1 is `GAMMA^(1 - BIAS) = MIN_INDEXABLE`.
pub(crate) const BIAS: i32 = 1338;

/// The largest key of a finite bin (the Agent's `maxKey`).
pub const MAX_KEY: i16 = i16::MAX - 1;

/// The key standing for +∞ (and, negated, −∞): magnitudes above
/// `GAMMA^(MAX_KEY - BIAS) ≈ 4.1e211`.
pub const INF_KEY: i16 = i16::MAX;

/// The most bins a sketch keeps before it collapses its lowest ones
/// (the Agent's `defaultBinLimit`).
pub const BIN_LIMIT: usize = 4096;

/// The largest count of one bin; larger counts spill into extra bins that
/// share the key.
pub const MAX_BIN_COUNT: u16 = u16::MAX;

/// The bin key of `v`: 0 for zero and magnitudes below [`MIN_INDEXABLE`],
/// `±INF_KEY` beyond the largest indexable magnitude, otherwise
/// `±(round_half_even(log_gamma(|v|)) + BIAS)`.
///
/// NaN has no key; callers filter it out first (it maps to 0 here).
#[inline]
pub fn key(v: f64) -> i16 {
    if v < 0.0 {
        return -key(-v);
    }
    if v.is_nan() || v < MIN_INDEXABLE {
        return 0;
    }
    // Kept in f64 until range-checked: +∞ (or a huge finite value) must not
    // overflow an integer conversion.
    let exponent = (v.ln() / GAMMA_LN).round_ties_even() + f64::from(BIAS);
    if exponent > f64::from(MAX_KEY) {
        INF_KEY
    } else if exponent < 1.0 {
        // Cannot happen for v >= MIN_INDEXABLE; the Agent guards it too.
        1
    } else {
        // In 1..=MAX_KEY and integral, so the conversion is exact.
        exponent as i16
    }
}

/// The value a bin reports as its lower end: `±GAMMA^(|k| - BIAS)`, 0 for key
/// 0 and ±∞ for `±INF_KEY` (the Agent's `Config.f64`).
#[inline]
pub fn lower_bound(k: i16) -> f64 {
    if k < 0 {
        // `-i16::MIN` would overflow, but keys never go below `-INF_KEY`.
        return -lower_bound(k.saturating_neg());
    }
    match k {
        0 => 0.0,
        INF_KEY => f64::INFINITY,
        _ => GAMMA.powf(f64::from(i32::from(k) - BIAS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_derived_exactly_as_the_agent_derives_them() {
        assert_eq!(GAMMA, 1.0 + 2.0 * EPS);
        assert_eq!(GAMMA_LN, (2.0 * EPS).ln_1p());
        let emin = (1e-9_f64.ln() / GAMMA_LN).floor();
        assert_eq!(emin, -1337.0);
        assert_eq!(BIAS, 1 - emin as i32);
        // The Agent sets norm.min = f64(1) = gamma^(1 - bias).
        assert_eq!(MIN_INDEXABLE, GAMMA.powf(f64::from(1 - BIAS)));
        const { assert!(MIN_INDEXABLE <= 1e-9) };
    }

    #[test]
    fn zero_and_tiny_magnitudes_have_key_zero() {
        for v in [
            0.0,
            -0.0,
            1e-10,
            -1e-10,
            MIN_INDEXABLE * 0.999,
            f64::MIN_POSITIVE,
            f64::NAN,
        ] {
            assert_eq!(key(v), 0, "{v}");
        }
        assert_eq!(key(MIN_INDEXABLE), 1);
        assert_eq!(key(-MIN_INDEXABLE), -1);
        assert_eq!(key(1e-9), 1);
    }

    #[test]
    fn one_maps_to_the_bias() {
        assert_eq!(key(1.0), 1338);
        assert_eq!(key(-1.0), -1338);
        assert_eq!(lower_bound(1338), 1.0);
        assert_eq!(key(GAMMA), 1339);
    }

    #[test]
    fn keys_round_to_the_nearest_power_of_gamma() {
        // Just below and above the half-way point between gamma^0 and gamma^1.
        let half = GAMMA.sqrt();
        assert_eq!(key(half * 0.9999), 1338);
        assert_eq!(key(half * 1.0001), 1339);
    }

    #[test]
    fn key_of_lower_bound_is_the_key_itself() {
        for k in (1..=MAX_KEY).step_by(7).chain([1, 2, MAX_KEY - 1, MAX_KEY]) {
            assert_eq!(key(lower_bound(k)), k, "key {k}");
            assert_eq!(key(lower_bound(-k)), -k, "key -{k}");
        }
    }

    #[test]
    fn huge_magnitudes_map_to_the_infinity_key() {
        assert_eq!(key(f64::MAX), INF_KEY);
        assert_eq!(key(f64::INFINITY), INF_KEY);
        assert_eq!(key(f64::NEG_INFINITY), -INF_KEY);
        // round(ln(1e211) / ln(gamma)) + 1338, computed independently.
        assert_eq!(key(1e211), 32674);
        assert_eq!(key(lower_bound(MAX_KEY) * GAMMA), INF_KEY);
        assert_eq!(lower_bound(INF_KEY), f64::INFINITY);
        assert_eq!(lower_bound(-INF_KEY), f64::NEG_INFINITY);
        assert_eq!(lower_bound(0), 0.0);
    }
}
