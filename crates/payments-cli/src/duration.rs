//! Durations as people write them on a command line: `90s`, `4m`, `2h`, `1d`, `0`.

use std::time::Duration;

/// Reads `90s`, `4m`, `2h` or `1d` (a whole number and one unit); `0` is zero.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .filter(|at| *at > 0)
        .ok_or_else(|| {
            format!("`{text}` is not a duration; write a whole number and a unit: 90s, 4m, 2h, 1d")
        })?;
    let (number, unit) = text.split_at(split);
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "`{unit}` in `{text}` is not a unit; use s, m, h or d (90s, 4m, 2h, 1d)"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(seconds_per))
        .filter(|seconds| *seconds <= 100 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is out of range; at most 100 years"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written_and_mistakes_are_named() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("4m"), Ok(Duration::from_secs(240)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("4").unwrap_err().contains("90s, 4m"));
        assert!(
            parse_duration("4 weeks")
                .unwrap_err()
                .contains("not a unit")
        );
        assert!(parse_duration("m").unwrap_err().contains("not a duration"));
        assert!(
            parse_duration("99999999999999999d")
                .unwrap_err()
                .contains("out of range")
        );
    }
}
