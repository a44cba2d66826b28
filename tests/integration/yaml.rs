//! YAML as Digdag's SnakeYAML reads it: every `tests/fixtures/yaml/NAME.dig` must parse to the
//! value in `NAME.json`, key order included.
//!
//! Each fixture says on a comment line how its value was checked against PyYAML, and where
//! PyYAML (YAML 1.1) and Digdag's SnakeYAML with Digdag's typing differ, why the expected value
//! follows Digdag; `tests/fixtures/yaml/pyyaml_check.py` re-checks those lines (it needs
//! PyYAML, so it is not part of `cargo test`).

use crate::util;
use spade::diag::SourceMap;

#[test]
fn yaml_fixtures_parse_to_the_expected_values() {
    let dir = util::root().join("tests/fixtures/yaml");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".dig").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 20, "only {} fixtures", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let path = dir.join(format!("{name}.dig"));
        let text = std::fs::read_to_string(&path).unwrap();
        if !text
            .split(['\n', '\r'])
            .any(|l| l.starts_with("# pyyaml: ") || l.starts_with("# pyyaml-gives: "))
        {
            failures.push(format!(
                "{name}: no `# pyyaml:` line saying how it was checked"
            ));
        }
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        let mut sources = SourceMap::new();
        match spade::dig::parse_document(&mut sources, path.clone(), text) {
            Ok(value) => {
                let got = serde_json::to_string(&value.to_json_raw()).unwrap();
                let want = serde_json::to_string(&expected).unwrap();
                if got != want {
                    failures.push(format!("{name}:\n  expected {want}\n  got      {got}"));
                }
            }
            Err(diags) => failures.push(format!("{name}: {}", diags[0].render(&sources))),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
