//! `../shared/conformance/schedules.tsv`: when schedules fire (DST included), run through the
//! real parser and `spade schedule preview`, one row at a time.

use crate::util;

/// Turns the table's one-line `schedule` column (`daily>: 07:00:00, start: 2026-12-01`) into
/// the lines of a `schedule:` block.
fn schedule_block(column: &str) -> String {
    // Only `, key: value` pairs after the kind are options; a comma inside the kind's own
    // value (e.g. `weekly>: Sun,09:00:00`) has no space after it.
    column
        .split(", ")
        .map(|part| format!("  {part}\n"))
        .collect()
}

#[test]
fn schedules_table_fires_at_the_expected_times() {
    let Some(shared) = util::shared() else { return };
    let table = std::fs::read_to_string(shared.join("conformance/schedules.tsv")).unwrap();
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (name_c, tz_c, sched_c, after_c, count_c, expect_c) = (
        col("name"),
        col("timezone"),
        col("schedule"),
        col("after"),
        col("count"),
        col("expect"),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut rows = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split('\t').collect();
        let name = cells[name_c];
        rows += 1;
        let file = dir.path().join(format!("{name}.dig"));
        let text = format!(
            "timezone: {}\nschedule:\n{}\n+task:\n  echo>: hi\n",
            cells[tz_c],
            schedule_block(cells[sched_c])
        );
        std::fs::write(&file, text).unwrap();
        let out = util::spade()
            .args(["schedule", "preview"])
            .arg(&file)
            .args(["--after", cells[after_c], "--count", cells[count_c]])
            .output()
            .unwrap();
        let got = String::from_utf8_lossy(&out.stdout)
            .lines()
            .collect::<Vec<_>>()
            .join(";");
        if !out.status.success() || got != cells[expect_c] {
            failures.push(format!(
                "{name}:\n  expected {}\n  got      {got}\n  stderr   {}",
                cells[expect_c],
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    assert!(rows > 0, "schedules.tsv has no rows");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("schedules.tsv: {rows} rows passed");
}
