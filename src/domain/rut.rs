//! Rol Único Tributario: digits plus a módulo-11 check digit, canonical form `12345678-K`.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rut {
    number: u32,
    dv: char,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RutError {
    #[error("RUT is empty")]
    Empty,
    #[error("RUT must be digits, a dash and a check digit (e.g. 76192083-9)")]
    Format,
    #[error("RUT check digit is {found}, expected {expected}")]
    CheckDigit { found: char, expected: char },
}

impl Rut {
    /// The módulo-11 check digit of `number`.
    pub fn check_digit(mut number: u32) -> char {
        let mut sum = 0u32;
        let mut factor = 2u32;
        while number > 0 {
            sum += (number % 10) * factor;
            number /= 10;
            factor = if factor == 7 { 2 } else { factor + 1 };
        }
        match 11 - (sum % 11) {
            11 => '0',
            10 => 'K',
            d => char::from_digit(d, 10).unwrap_or('0'),
        }
    }

    pub fn from_number(number: u32) -> Rut {
        Rut { number, dv: Rut::check_digit(number) }
    }

    pub fn number(&self) -> u32 {
        self.number
    }

    pub fn dv(&self) -> char {
        self.dv
    }

    /// The receptor the SII uses for anonymous boletas.
    pub const ANONYMOUS: Rut = Rut { number: 66_666_666, dv: '6' };
    /// The SII itself, the receptor of every envelope sent to it.
    pub const SII: Rut = Rut { number: 60_803_000, dv: 'K' };
}

impl FromStr for Rut {
    type Err = RutError;

    /// Accepts `12.345.678-5`, `12345678-5` and lowercase `k`; stores the canonical form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(RutError::Empty);
        }
        let (body, dv) = s.rsplit_once('-').ok_or(RutError::Format)?;
        let digits: String = body.chars().filter(|c| *c != '.').collect();
        if digits.is_empty() || digits.len() > 8 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(RutError::Format);
        }
        let mut dv_chars = dv.chars();
        let found = match (dv_chars.next(), dv_chars.next()) {
            (Some(c), None) if c.is_ascii_digit() || c == 'k' || c == 'K' => c.to_ascii_uppercase(),
            _ => return Err(RutError::Format),
        };
        let number: u32 = digits.parse().map_err(|_| RutError::Format)?;
        if number == 0 {
            return Err(RutError::Format);
        }
        let expected = Rut::check_digit(number);
        if found != expected {
            return Err(RutError::CheckDigit { found, expected });
        }
        Ok(Rut { number, dv: found })
    }
}

impl fmt::Display for Rut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.number, self.dv)
    }
}

impl serde::Serialize for Rut {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Rut {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_check_digits() {
        for (n, dv) in [
            (60910000, '1'),
            (76555835, '2'),
            (76177907, '9'),
            (76369187, 'K'),
            (77879240, '0'),
            (96874030, 'K'),
            (60803000, 'K'),
            (97975000, '5'),
            (76192083, '9'),
            (8414240, '9'),
            (7880442, '4'),
            (66666666, '6'),
        ] {
            assert_eq!(Rut::check_digit(n), dv, "{n}");
        }
    }

    #[test]
    fn parses_and_canonicalises() {
        let r: Rut = "76.369.187-k".parse().unwrap();
        assert_eq!(r.to_string(), "76369187-K");
        assert_eq!(Rut::SII, "60803000-K".parse().unwrap());
        assert_eq!(Rut::ANONYMOUS, "66666666-6".parse().unwrap());
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!("76192083-8".parse::<Rut>(), Err(RutError::CheckDigit { found: '8', expected: '9' }));
        assert_eq!("".parse::<Rut>(), Err(RutError::Empty));
        for bad in ["761920839", "7619a083-9", "123456789-0", "1-23", "0-0", "-9"] {
            assert!(bad.parse::<Rut>().is_err(), "{bad}");
        }
    }
}
