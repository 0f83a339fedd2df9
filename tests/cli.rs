//! The command line (docs/behaviour.md §12): `check-config` prints the effective configuration or names
//! the file, the key and the reason of every mistake.

mod common;

use std::process::Command;

fn holdfast(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(args)
        .output()
        .expect("run holdfast")
}

#[test]
fn check_config_accepts_the_shipped_example() {
    let path = common::repo().join("holdfast.toml");
    let out = holdfast(&["check-config", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("[sip]"), "{printed}");
    assert!(printed.contains("name = \"support\""), "{printed}");
}

#[test]
fn check_config_names_file_key_and_reason() {
    let dir = common::scratch_dir("cli");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[[queue]]\nname = \"support\"\nring_timeout = 0\n\n\
         [[route]]\nnumber = \"100\"\nqueue = \"sales\"\n",
    )
    .unwrap();
    let out = holdfast(&["check-config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = errors.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("bad.toml: queue[0].ring_timeout:")),
        "{errors}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("bad.toml: route[0].queue:") && l.contains("sales")),
        "{errors}"
    );
}

#[test]
fn check_config_reports_a_missing_file() {
    let out = holdfast(&["check-config", "/nonexistent/holdfast.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/holdfast.toml"));
}
