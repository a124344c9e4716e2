//! Off-policy evaluation on the Open Bandit Dataset sample (`tests/data/obd`, CC BY 4.0): the
//! value of the production Bernoulli Thompson sampling policy estimated from the log of the
//! uniform random policy reproduces the open bandit pipeline's published relative value by IPW
//! (≈ 1.198 over the random policy's own).

use leadrouter_sim::cli::{Cli, main_with};
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/obd")
        .join(name)
}

fn sim(args: &[&str]) -> anyhow::Result<String> {
    use clap::Parser;
    let cli = Cli::try_parse_from(std::iter::once("leadrouter-sim").chain(args.iter().copied()))?;
    let mut out = Vec::new();
    main_with(cli, &mut out)?;
    Ok(String::from_utf8(out)?)
}

#[test]
fn thompson_sampling_over_random_reproduces_the_published_relative_value() {
    let dir = tempfile::tempdir().unwrap();
    let eval = dir.path().join("bts.csv");
    let prior = data("bts_prior.csv");
    sim(&[
        "thompson",
        "--prior",
        prior.to_str().unwrap(),
        "--positions",
        "3",
        "--sims",
        "1000000",
        "--out",
        eval.to_str().unwrap(),
    ])
    .unwrap();
    let log = data("random_log.csv");
    let report = sim(&[
        "ope",
        "--log",
        log.to_str().unwrap(),
        "--eval",
        eval.to_str().unwrap(),
        "--bootstrap",
        "200",
        "--json",
    ])
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&report).unwrap();
    let est = |name: &str| {
        v["estimates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["estimator"] == name)
            .unwrap()
            .clone()
    };
    let ips = est("ips");
    let relative = ips["relative_to_logged"].as_f64().unwrap();
    assert!(
        (relative - 1.198).abs() < 0.01,
        "IPW relative value {relative}, published 1.198"
    );
    // Every estimator says BTS beats random, and the log supports it.
    for name in ["snips", "dm", "dr"] {
        let r = est(name)["relative_to_logged"].as_f64().unwrap();
        assert!(r > 1.1 && r < 1.35, "{name}: {r}");
    }
    assert!(ips["low"].as_f64().unwrap() < ips["value"].as_f64().unwrap());
    assert!(ips["high"].as_f64().unwrap() > ips["value"].as_f64().unwrap());
    assert!(v["effective_sample_size"].as_f64().unwrap() > 1000.0);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 0);
    assert_eq!(v["rows"], 10_000);
}

#[test]
fn bad_files_are_named_with_the_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.csv");
    let eval = dir.path().join("eval.csv");
    std::fs::write(
        &log,
        "round,action,position,reward,pscore\n0,1,0,1,0.5\n1,1,0,1,0\n",
    )
    .unwrap();
    std::fs::write(&eval, "round,action,position,prob\n*,1,0,1\n").unwrap();
    let run = || {
        sim(&[
            "ope",
            "--log",
            log.to_str().unwrap(),
            "--eval",
            eval.to_str().unwrap(),
        ])
    };
    let e = run().unwrap_err().to_string();
    assert!(e.contains("line 3") && e.contains("pscore"), "{e}");
    std::fs::write(&log, "round,action,reward\n").unwrap();
    let e = run().unwrap_err().to_string();
    assert!(e.contains("header must be"), "{e}");
    std::fs::write(&log, "round,action,position,reward,pscore\n0,1,0,1,0.5\n").unwrap();
    std::fs::write(&eval, "round,action,position,prob\n*,1,0,0.8\n*,2,0,0.8\n").unwrap();
    let e = run().unwrap_err().to_string();
    assert!(e.contains("sum to"), "{e}");
    std::fs::write(&eval, "round,action,position,prob\n0,1,0,x\n").unwrap();
    let e = run().unwrap_err().to_string();
    assert!(e.contains("line 2") && e.contains("prob"), "{e}");
}
