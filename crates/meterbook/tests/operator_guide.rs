//! The operator guide's walkthrough, run verbatim: every ```sh walkthrough
//! block of docs/operator-guide.md, in order, as one shell script (so `cd` and
//! variables carry over, as in a terminal), in a temp dir holding a copy of
//! `examples/`, with the built binary first on the PATH. A guide whose
//! commands stop working fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_meterbook");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bodies of the fenced blocks whose info string is `sh walkthrough`.
fn walkthrough_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.trim() == "```sh walkthrough" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim() == "```" => blocks.extend(current.take()),
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unclosed walkthrough block");
    blocks
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn the_operator_guide_walkthrough_runs_as_written() {
    let guide = std::fs::read_to_string(repo().join("docs/operator-guide.md")).unwrap();
    let blocks = walkthrough_blocks(&guide);
    assert!(
        blocks.len() >= 10,
        "found {} walkthrough blocks",
        blocks.len()
    );
    let script = format!("set -eu\n{}", blocks.concat());

    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples"), &tmp.path().join("examples"));
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(tmp.path())
        .env("PATH", path)
        .env_remove("MB_DB")
        .env_remove("MB_REPORT_DIR")
        .output()
        .expect("run sh");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the walkthrough failed:\n--- script ---\n{script}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );

    // What the guide says happens, happened.
    let has = |s: &str| assert!(stdout.contains(s), "no `{s}` in:\n{stdout}\n{stderr}");
    has("created enrollment 8608480 (Northwind Traders), USD 2025-01-01 to 2027-12-31");
    has("period 202501 closed");
    has("period 202502 closed");
    has("202503\topen");
    // The rejects file lists the two bad rows with their reasons.
    has("3,SubscriptionGuid,unknown subscription");
    has("4,ConsumedQuantity,`-1`: must not be negative");
    // March: the purchase and the credit carried over, the late January row
    // booked into it as a correction.
    has("202503,USD,492.34,0.00,0.00,");
    assert!(stderr.contains("ending balance"), "{stderr}");
    assert!(stdout.contains("mbk_"), "a key was printed:\n{stdout}");
    assert!(stdout.contains("/portal/set-password?token="), "{stdout}");

    let dir = tmp.path().join("walkthrough");
    let usage = std::fs::read_to_string(dir.join("usage-202503.csv")).unwrap();
    assert!(
        usage.contains("late-0001"),
        "the correction is booked in March"
    );
    let parquet = std::fs::read(dir.join("research-2025q1.parquet")).unwrap();
    assert!(parquet.starts_with(b"PAR1"));
}
