//! The README tells the truth: every problem code and every config key is documented.

use myinfo_proxy::error::ProblemCode;

const README: &str = include_str!("../README.md");
const CONFIG: &str = include_str!("../config.toml");

#[test]
fn readme_lists_every_problem_code_with_its_status() {
    for code in ProblemCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.status().as_u16());
        assert!(
            README.contains(&row),
            "README lacks the row for {}",
            code.as_str()
        );
    }
}

#[test]
fn readme_documents_every_key_of_the_shipped_config() {
    for line in CONFIG.lines() {
        let line = line.trim_start_matches('#').trim();
        let Some((key, _)) = line.split_once(" = ") else {
            continue;
        };
        if key.contains(' ') {
            continue;
        }
        assert!(
            README.contains(&format!("`{key}`"))
                || README.contains(&format!(".{key}`"))
                || README.contains(&format!("{key}`")),
            "README lacks config key {key}"
        );
    }
}
