//! Text rules every SII string field shares: ISO-8859-1 only, no control characters, XSD length
//! limits counted in characters. Nothing is truncated silently.

use crate::error::Problems;

/// Checks one text field; records every problem under `path`.
pub fn check(problems: &mut Problems, path: &str, value: &str, min: usize, max: usize) {
    let mut len = 0usize;
    for c in value.chars() {
        len += 1;
        if c as u32 > 0xFF {
            problems.push(
                path,
                "not-latin1",
                format!("character {c:?} (U+{:04X}) cannot be written in ISO-8859-1", c as u32),
            );
            return;
        }
        if (c as u32) < 0x20 && c != '\t' && c != '\n' || (0x7F..=0x9F).contains(&(c as u32)) {
            problems.push(path, "control-character", format!("control character U+{:04X} is not allowed", c as u32));
            return;
        }
    }
    if len < min {
        problems.push(path, "too-short", format!("must have at least {min} characters"));
    } else if len > max {
        problems.push(path, "too-long", format!("has {len} characters, the SII allows at most {max}"));
    }
}

/// Optional field variant of [`check`].
pub fn check_opt(problems: &mut Problems, path: &str, value: &Option<String>, max: usize) {
    if let Some(v) = value {
        check(problems, path, v, 1, max);
    }
}

/// The first `max` characters, trimmed: the SII truncates RSR and IT1 in the TED to 40.
pub fn truncate(value: &str, max: usize) -> String {
    value.trim().chars().take(max).collect::<String>().trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_and_lengths() {
        let mut p = Problems::default();
        check(&mut p, "a", "Compañía Ñandú", 1, 80);
        assert!(p.is_empty());
        check(&mut p, "b", "café ☕", 1, 80);
        check(&mut p, "c", &"x".repeat(81), 1, 80);
        check(&mut p, "d", "", 1, 80);
        check(&mut p, "e", "a\u{7}b", 1, 80);
        let codes: Vec<_> = p.0.iter().map(|e| (e.path.as_str(), e.code)).collect();
        assert_eq!(codes, vec![("b", "not-latin1"), ("c", "too-long"), ("d", "too-short"), ("e", "control-character")]);
    }

    #[test]
    fn truncation_is_by_characters() {
        assert_eq!(truncate(&"ñ".repeat(50), 40).chars().count(), 40);
        assert_eq!(truncate("  ab  ", 40), "ab");
    }
}
