//! Reads a `/metrics` exposition strictly, as a scraper would: OpenMetrics text (what
//! `prometheus-client` writes), every sample of a family its `# TYPE` declared, label values
//! quoted with their escapes, numbers that parse, and `# EOF` last.

use std::collections::BTreeMap;

/// One sample: its metric name, its labels, its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric's name (`payments_runs_total`).
    pub name: String,
    /// Its labels, by name.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The labels of `{a="x",b="y"}` (without the braces), or why they do not read.
fn labels(mut text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    while !text.is_empty() {
        let (name, rest) = text
            .split_once("=\"")
            .ok_or_else(|| format!("a label without =\"value\": {text}"))?;
        if !is_name(name) || name.contains(':') {
            return Err(format!("not a label name: {name:?}"));
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("an unterminated label value: {rest}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('"' | '\\'))) => value.push(c),
                    other => return Err(format!("a bad escape in a label value: {other:?}")),
                },
                Some((_, c)) if c.is_control() => {
                    return Err(format!("a control character in a label value: {rest:?}"));
                }
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("the label {name} twice"));
        }
        text = &rest[end + 1..];
        text = text.strip_prefix(',').unwrap_or(text);
    }
    Ok(labels)
}

/// The samples of `text`, or the first line that a scraper would refuse and why.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    if !text.ends_with("# EOF\n") {
        return Err("it does not end with `# EOF`".to_owned());
    }
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let refuse = |why: String| format!("line {}: {why}: {line}", n + 1);
        if *line == "# EOF" {
            if n + 1 != lines.len() {
                return Err(refuse("`# EOF` before the end".to_owned()));
            }
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let (kind, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            if !is_name(name) {
                return Err(refuse("a comment about no metric name".to_owned()));
            }
            match kind {
                "TYPE" => {
                    let ty = words.next().unwrap_or("");
                    let known = [
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "info",
                        "stateset",
                        "gaugehistogram",
                        "unknown",
                    ];
                    if !known.contains(&ty) {
                        return Err(refuse(format!("an unknown type {ty:?}")));
                    }
                    if families.insert(name.to_owned(), ty.to_owned()).is_some() {
                        return Err(refuse("a family declared twice".to_owned()));
                    }
                }
                "HELP" | "UNIT" => {}
                other => return Err(refuse(format!("a comment `# {other}`"))),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| refuse("no value".to_owned()))?;
        let value = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            number => number
                .parse::<f64>()
                .map_err(|_| refuse("not a number".to_owned()))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or_else(|| refuse("labels without their `}`".to_owned()))?;
                (name, labels(inner).map_err(refuse)?)
            }
            None => (series, BTreeMap::new()),
        };
        if !is_name(name) {
            return Err(refuse("not a metric name".to_owned()));
        }
        let family = [
            "_total", "_bucket", "_count", "_sum", "_created", "_info", "",
        ]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|family| families.contains_key(*family));
        if family.is_none() {
            return Err(refuse("a sample of no declared family".to_owned()));
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

/// The value of the sample `name` whose labels include `labels`, when there is one.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|value| value == v))
        })
        .map(|s| s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_exposition_reads_and_a_broken_one_is_named() {
        let good = "# HELP runs Runs.\n# TYPE runs counter\nruns_total{source=\"mkp\",outcome=\"a \\\"b\\\"\"} 3\n# TYPE up gauge\nup NaN\n# EOF\n";
        let samples = parse(good).unwrap();
        assert_eq!(
            value(&samples, "runs_total", &[("outcome", "a \"b\"")]),
            Some(3.0)
        );
        assert!(value(&samples, "up", &[]).unwrap().is_nan());
        for (bad, why) in [
            ("# TYPE up gauge\nup 1\n", "# EOF"),
            ("up 1\n# EOF\n", "no declared family"),
            ("# TYPE up gauge\nup{a=\"x} 1\n# EOF\n", "unterminated"),
            ("# TYPE up gauge\nup one\n# EOF\n", "not a number"),
            ("# TYPE up gauge\nup{a=\"x\",a=\"y\"} 1\n# EOF\n", "twice"),
            ("# TYPE up gauge\n# EOF\nup 1\n# EOF\n", "before the end"),
        ] {
            let error = parse(bad).unwrap_err();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
    }
}
