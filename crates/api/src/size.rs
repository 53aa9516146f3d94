//! Human sizes as users type them (`10G`, `512M`, `1.5T`, `4096`), in the
//! binary units of qemu-img and virsh.

/// Parses a size; a bare number is bytes, `K`/`M`/`G`/`T`/`P` (optionally
/// followed by `iB` or `B`) are powers of 1024.
pub fn parse(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        "P" | "PB" | "PIB" => 50,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use K, M, G, T or P)"
            ));
        }
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 10G"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{text:?} is too large"));
    }
    Ok(bytes.round() as u64)
}

/// Formats bytes with a binary unit, e.g. `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse("4096").unwrap(), 4096);
        assert_eq!(parse("10G").unwrap(), 10 << 30);
        assert_eq!(parse("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse("1.5k").unwrap(), 1536);
        assert!(parse("10X").unwrap_err().contains("unknown unit"));
        assert!(parse("G").is_err());
        assert_eq!(human(1536 << 20), "1.5 GiB");
        assert_eq!(human(12), "12 B");
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        const UNITS: [(&str, u32); 6] = [
            ("", 0),
            ("K", 10),
            ("MiB", 20),
            ("G", 30),
            ("TB", 40),
            ("p", 50),
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Nothing a user types makes the parser panic.
            #[test]
            fn arbitrary_text_never_panics(text in ".{0,24}") {
                let _ = parse(&text);
            }

            /// Numbers and units near the edge of u64 never panic or wrap:
            /// a size is within float precision of the exact one, or refused
            /// as too large.
            #[test]
            fn huge_numbers_are_refused_not_wrapped(n in any::<u64>(), unit in 0..UNITS.len()) {
                let (suffix, shift) = UNITS[unit];
                let exact = (u128::from(n) << shift) as f64;
                match parse(&format!("{n}{suffix}")) {
                    Ok(bytes) => prop_assert!((bytes as f64 - exact).abs() <= exact * 1e-12 + 1.0),
                    Err(e) => {
                        prop_assert!(e.contains("too large"), "{e}");
                        prop_assert!(exact >= u64::MAX as f64 * 0.999);
                    }
                }
            }

            /// An exact size written with its unit parses back to itself.
            #[test]
            fn exact_sizes_round_trip(n in 0u64..(1 << 13), unit in 0..UNITS.len()) {
                let (suffix, shift) = UNITS[unit];
                prop_assert_eq!(parse(&format!("{n}{suffix}")).unwrap(), n << shift);
            }

            /// What `human` prints parses back to within its rounding
            /// (one decimal of its unit).
            #[test]
            fn human_output_parses_back(bytes in any::<u64>()) {
                let shown = human(bytes).replace(' ', "");
                let back = parse(&shown);
                if bytes < (1 << 60) {
                    let back = back.unwrap() as f64;
                    prop_assert!((back - bytes as f64).abs() <= bytes as f64 * 0.05 + 1.0, "{shown}");
                }
            }
        }
    }
}
