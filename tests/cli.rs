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

#[test]
fn a_recordings_directory_that_cannot_be_written_stops_the_start_with_its_key() {
    let dir = common::scratch_dir("cli-recordings");
    // A regular file where the directory would go: not creatable, even by root.
    std::fs::write(dir.join("not-a-dir"), b"").unwrap();
    let path = dir.join("holdfast.toml");
    std::fs::write(
        &path,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{}\"\n[store]\ndata_dir = \"{}\"\n\
             [media]\nrecordings = \"{}\"\n[admin]\nlisten = \"\"\n\
             [[queue]]\nname = \"support\"\nrecord = true\n",
            common::free_sip_port(),
            dir.join("data").display(),
            dir.join("not-a-dir").join("recordings").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .current_dir(common::repo())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run holdfast");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("holdfast kept running with an unwritable recordings directory");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("[media] recordings") && stderr.contains("support"),
        "{stderr}"
    );
}
