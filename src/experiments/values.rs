//! How the commands read their numeric options: every number has a range, and NaN or an
//! infinity is refused by the option's name before anything runs (clap prints
//! `error: invalid value 'NaN' for '--difficulty <DIFFICULTY>': ...` and exits with 2).

use std::ops::RangeInclusive;

use clap::builder::{RangedU64ValueParser, TypedValueParser};

/// A finite number between `low` and `high`, each end included when its flag says so
/// (`what` says which numbers in the message).
fn float_in(
    text: &str,
    (low, with_low): (f64, bool),
    (high, with_high): (f64, bool),
    what: &str,
) -> Result<f64, String> {
    let value: f64 = text.trim().parse().map_err(|_| format!("`{text}` is not a number"))?;
    let above = value > low || (with_low && value == low);
    let below = value < high || (with_high && value == high);
    if value.is_finite() && above && below {
        Ok(value)
    } else {
        Err(format!("must be {what}, got {text}"))
    }
}

/// The largest f32, the top of the ranges that have none of their own.
const MAX: (f64, bool) = (f32::MAX as f64, true);

/// A finite number >= 0.
pub fn non_negative(text: &str) -> Result<f32, String> {
    float_in(text, (0.0, true), MAX, "a finite number >= 0").map(|v| v as f32)
}

/// A finite number > 0.
pub fn positive(text: &str) -> Result<f32, String> {
    float_in(text, (0.0, false), MAX, "a finite number > 0").map(|v| v as f32)
}

/// A center learning rate: in (0, 1].
pub fn alpha(text: &str) -> Result<f32, String> {
    float_in(text, (0.0, false), (1.0, true), "in (0, 1]").map(|v| v as f32)
}

/// A fraction strictly between 0 and 1 (identities held out).
pub fn open_fraction(text: &str) -> Result<f64, String> {
    float_in(text, (0.0, false), (1.0, false), "a fraction strictly between 0 and 1")
}

/// A fraction in [0, 1) (images held out for validation; 0: none).
pub fn fraction(text: &str) -> Result<f64, String> {
    float_in(text, (0.0, true), (1.0, false), "a fraction in [0, 1)")
}

/// A false-accept rate: in (0, 1).
pub fn rate(text: &str) -> Result<f64, String> {
    float_in(text, (0.0, false), (1.0, false), "a false-accept rate in (0, 1) such as 1e-3")
}

/// A cosine similarity: in [-1, 1].
pub fn cosine(text: &str) -> Result<f64, String> {
    float_in(text, (-1.0, true), (1.0, true), "a cosine similarity in [-1, 1]")
}

/// A whole number in `range`, as `usize`.
pub fn count(range: RangeInclusive<u64>) -> impl TypedValueParser<Value = usize> {
    RangedU64ValueParser::<usize>::new().range(range)
}

/// A whole number in `range`, as `u64`.
pub fn count_u64(range: RangeInclusive<u64>) -> impl TypedValueParser<Value = u64> {
    RangedU64ValueParser::<u64>::new().range(range)
}

/// Mebibytes that fit the address space as bytes.
pub fn mebibytes() -> impl TypedValueParser<Value = u64> {
    count_u64(0..=(isize::MAX as u64 >> 20))
}

/// The largest input side in pixels an option accepts (the network's own limits apply too).
pub const MAX_SIDE: u64 = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_infinity_and_out_of_range_values_are_refused() {
        for bad in ["NaN", "nan", "inf", "-inf", "-1", "1e39", "x"] {
            assert!(non_negative(bad).is_err(), "{bad}");
        }
        assert_eq!(non_negative("0"), Ok(0.0));
        assert!(positive("0").is_err());
        assert_eq!(alpha("1"), Ok(1.0));
        assert!(alpha("0").is_err() && alpha("1.5").is_err());
        assert!(open_fraction("0").is_err() && open_fraction("1").is_err() && open_fraction("NaN").is_err());
        assert_eq!(open_fraction("0.25"), Ok(0.25));
        assert!(fraction("0").is_ok() && fraction("1").is_err());
        assert!(rate("1e-3").is_ok() && rate("0").is_err());
        assert!(cosine("-1").is_ok() && cosine("NaN").is_err() && cosine("1.5").is_err());
    }
}
