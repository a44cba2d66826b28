//! "did you mean" hints: the closest known name by edit distance.

/// The candidate closest to `name`, when it is close enough to be a likely typo.
pub fn did_you_mean<'c>(
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = match name.chars().count() {
        0..=3 => 1,
        n => (n / 3).max(2),
    };
    let lower = name.to_ascii_lowercase();
    let len = name.chars().count();
    candidates
        .into_iter()
        // The distance is at least the length difference: skip the far ones cheaply, which
        // matters for the ~600 zone names.
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
        .map(|c| (distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, candidates: &[&str], expect: Option<&str>) {
        assert_eq!(
            did_you_mean(name, candidates.iter().copied()),
            expect,
            "{name}"
        );
    }

    #[test]
    fn suggests_close_names_only() {
        check("shh", &["sh", "echo"], Some("sh"));
        check("ech", &["sh", "echo"], Some("echo"));
        check(
            "skip_on_over_time",
            &["skip_on_overtime", "start"],
            Some("skip_on_overtime"),
        );
        check("tiemzone", &["timezone", "schedule"], Some("timezone"));
        check("rb", &["sh"], None);
        check("completely_else", &["timezone"], None);
        check("SH", &["sh"], Some("sh"));
    }
}
