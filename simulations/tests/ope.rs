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

/// The router's own log: a simulated day routed by `softmax` (which records the probability of
/// each pick), exported as `trail export --decisions` writes it, with what became of each lead.
/// The estimate of `scored`'s value from that log brackets what the simulator measured for
/// `scored` on the same day; a policy the log barely covers is flagged.
#[test]
fn the_routers_own_log_estimates_another_policy_within_its_interval() {
    use leadrouter_sim::run::{Options, run};
    use leadrouter_sim::scenario::Scenario;
    let s = Scenario::parse(
        "seed = 12\ndays = 1\n[truth]\nbase = -3.0\n[demand]\nleads_per_day = 12000\n\
         [[policies]]\nname = \"softmax\"\n[[policies]]\nname = \"scored\"\n",
    )
    .unwrap();
    let c = s.check().unwrap();
    let r = run(
        &s,
        &c,
        Options {
            progress: false,
            threads: 2,
            record_orders: true,
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (decisions, labels) = (dir.path().join("d.jsonl"), dir.path().join("l.csv"));
    let mut d = String::new();
    let mut l = String::from("lead_id,converted\n");
    for (line, converted) in &r.policies[0].decisions {
        d.push_str(&serde_json::to_string(line).unwrap());
        d.push('\n');
        l.push_str(&format!("{},{}\n", line.lead_id, u8::from(*converted)));
    }
    std::fs::write(&decisions, d).unwrap();
    std::fs::write(&labels, l).unwrap();
    let ope = |policy: &str| -> serde_json::Value {
        let out = sim(&[
            "ope",
            "--decisions",
            decisions.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
            "--policy",
            policy,
            "--bootstrap",
            "200",
            "--json",
        ])
        .unwrap();
        serde_json::from_str(&out).unwrap()
    };
    let truth =
        r.days[0].policies[1].expected_conversions / r.days[0].policies[0].expected_conversions;
    assert!(truth > 1.02, "scored should beat softmax here: {truth}");
    let v = ope("scored");
    let logged = v["logged_value"].as_f64().unwrap();
    let dr = v["estimates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["estimator"] == "dr")
        .unwrap();
    let (low, high) = (
        dr["low"].as_f64().unwrap() / logged,
        dr["high"].as_f64().unwrap() / logged,
    );
    assert!(
        low <= truth && truth <= high,
        "DR [{low}, {high}] misses the simulator's {truth}"
    );
    assert!(v["warnings"].as_array().unwrap().is_empty(), "{v}");
    // round_robin disagrees with softmax on nearly every lead: flagged.
    let v = ope("round_robin");
    assert!(
        v["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("supports the candidate poorly")),
        "{v}"
    );
    // A bad policy name is refused, naming the flag.
    let err = sim(&[
        "ope",
        "--decisions",
        decisions.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--policy",
        "coin",
    ])
    .unwrap_err();
    assert!(err.to_string().starts_with("--policy:"), "{err}");
}
