//! The XSD limits of numbers and dates, checked with the field's path.

use chrono::NaiveDate;
use rust_decimal::Decimal;

use crate::error::Problems;

pub fn check_date(p: &mut Problems, path: &str, d: NaiveDate) {
    let (lo, hi) = (NaiveDate::from_ymd_opt(2000, 1, 1), NaiveDate::from_ymd_opt(2050, 12, 31));
    if Some(d) < lo || Some(d) > hi {
        p.push(path, "out-of-range", "the SII accepts dates from 2000-01-01 to 2050-12-31");
    }
}

/// An XSD decimal with `int` integer digits and `frac` decimals, strictly positive when `positive`.
pub fn check_dec(p: &mut Problems, path: &str, v: Decimal, int: u32, frac: u32, positive: bool) {
    if v.is_sign_negative() && !v.is_zero() {
        p.push(path, "negative", "must not be negative");
        return;
    }
    if positive && v.is_zero() {
        p.push(path, "out-of-range", "must be greater than zero");
        return;
    }
    let n = v.normalize();
    if n.scale() > frac {
        p.push(path, "too-precise", format!("at most {frac} decimals"));
    }
    if n.trunc().abs() >= Decimal::from(10u64.pow(int.min(18))) {
        p.push(path, "out-of-range", format!("at most {int} integer digits"));
    }
}
