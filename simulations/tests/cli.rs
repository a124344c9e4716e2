//! The `leadrouter-sim` binary as an analyst runs it.

use std::path::Path;
use std::process::Command;

fn sim(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_leadrouter-sim"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn runs_a_shipped_scenario_into_a_report() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("rep");
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/demo_week.toml");
    let (ok, stdout, stderr) = sim(&[
        "run",
        scenario,
        "--out",
        out.to_str().unwrap(),
        "--days",
        "1",
        "--leads-per-day",
        "1500",
    ]);
    assert!(ok, "{stderr}");
    // Progress went to stderr (not a terminal here: lines), the table to stdout.
    assert!(stderr.contains("progress:"), "{stderr}");
    for p in [
        "scored",
        "nearest",
        "round_robin",
        "dual_price",
        "balance",
        "ranking",
    ] {
        assert!(stdout.contains(p), "{stdout}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| `scored`") && md.contains("`25-70-5`"),
        "{md}"
    );
    let days = std::fs::read_to_string(out.join("days.csv")).unwrap();
    assert_eq!(days.lines().count(), 1 + 6);
}

#[test]
fn bad_scenarios_and_flags_are_refused_plainly() {
    let d = tempfile::tempdir().unwrap();
    let bad = write(
        d.path(),
        "bad.toml",
        "days = 3\n[demand]\nchannels = { PIGEON = 1.0 }\n",
    );
    let (ok, _, err) = sim(&["run", &bad, "--out", d.path().join("r").to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("bad.toml") && err.contains("demand.channels.PIGEON"),
        "{err}"
    );
    assert!(
        !d.path().join("r").exists(),
        "nothing written for a bad scenario"
    );
    let good = write(d.path(), "good.toml", "days = 1\n");
    let (ok, _, err) = sim(&["run", &good, "--days", "0"]);
    assert!(!ok && err.contains("days: must be 1..=366"), "{err}");
    let (ok, _, err) = sim(&["run", &good, "--threads", "0"]);
    assert!(!ok && err.contains("--threads"), "{err}");
    let (ok, _, err) = sim(&["run", &d.path().join("none.toml").display().to_string()]);
    assert!(!ok && err.contains("none.toml"), "{err}");
}

#[test]
fn solves_an_explicit_instance_and_scores_an_assignment() {
    let d = tempfile::tempdir().unwrap();
    let e = write(
        d.path(),
        "edges.csv",
        "lead,guide,value\na,x,10\na,y,9\nb,x,8\nb,y,1\n",
    );
    let c = write(d.path(), "caps.csv", "guide,capacity\nx,1\ny,1\n");
    let a = write(d.path(), "mine.csv", "lead,guide\na,x\nb,y\n");
    let best = d.path().join("best.csv");
    let (ok, out, err) = sim(&[
        "instance",
        "--edges",
        &e,
        "--capacities",
        &c,
        "--assignment",
        &a,
        "--out",
        best.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("optimum        17.0000"), "{out}");
    assert!(out.contains("greedy         11.0000"), "{out}");
    assert!(
        out.contains("assignment     11.0000  (0.6471 of the optimum)"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(best).unwrap(),
        "lead,guide\na,y\nb,x\n"
    );
    let bad = write(d.path(), "bad.csv", "lead,guide,value\na,x,ten\n");
    let (ok, _, err) = sim(&["instance", "--edges", &bad, "--capacities", &c]);
    assert!(!ok && err.contains("bad.csv:2: value"), "{err}");
}

#[test]
fn every_shipped_scenario_reads_and_checks() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            leadrouter_sim::scenario::Scenario::read(&path)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 4, "{n} scenarios");
}
