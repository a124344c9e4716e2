//! Experiments (`[[experiments]]`): traffic split between policies by a stable hash of the
//! member id (or the lead id), optionally only for some member segments. The first experiment
//! that takes a lead decides its policy; a lead no experiment takes gets `[policy]`. Each
//! decision records its experiment and arm, so results can be read by arm (`/metrics`, replay).
//!
//! The hash is FNV-1a over `salt ‖ 0 ‖ unit id`, taken to [0, 1): the same member lands in the
//! same arm on every replica, every restart and every reload that keeps the salt and the shares
//! (changing a share moves only the members between the old and new boundary). Set a new `salt`
//! to reshuffle.
//!
//! ```toml
//! [[experiments]]
//! name = "explore-2026-12"
//! unit = "member"                 # member (anonymous leads by lead id) | lead
//! segments = [1, 3]               # optional: only members of these segments ([models] segments)
//! [[experiments.arms]]
//! name = "control"
//! share = 0.9
//! policy = { name = "scored" }
//! [[experiments.arms]]
//! name = "softmax"
//! share = 0.1
//! policy = { name = "softmax", temperature = 0.05 }
//! ```

use super::{Policy, PolicyConfig};
use crate::catalog::Network;
use crate::domain::Lead;
use serde::Deserialize;
use std::sync::Arc;

/// Most experiments in service at once.
pub const MAX_EXPERIMENTS: usize = 16;
/// Most arms per experiment.
pub const MAX_ARMS: usize = 16;

/// What an experiment hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// The member id; a lead without one is hashed by its lead id.
    #[default]
    Member,
    Lead,
}

/// One arm of an experiment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmConfig {
    pub name: String,
    /// Share of the experiment's traffic, in (0, 1]; the arms' shares add up to 1.
    pub share: f64,
    pub policy: PolicyConfig,
}

/// `[[experiments]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    pub name: String,
    #[serde(default)]
    pub unit: Unit,
    /// Only members of these segments; empty: every lead.
    #[serde(default)]
    pub segments: Vec<u16>,
    /// The hash's salt; default: the experiment's name.
    #[serde(default)]
    pub salt: Option<String>,
    pub arms: Vec<ArmConfig>,
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "{what}: must be 1..=64 of A-Z a-z 0-9 - _ ., got {name:?}"
        ));
    }
    Ok(())
}

/// One arm in service.
#[derive(Debug, Clone)]
pub struct Arm {
    pub name: Arc<str>,
    /// Upper end of the arm's slice of [0, 1).
    upper: f64,
    pub config: PolicyConfig,
    pub policy: Arc<dyn Policy>,
}

/// One experiment in service.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: Arc<str>,
    pub unit: Unit,
    segments: Vec<u16>,
    salt: u64,
    pub arms: Vec<Arm>,
}

/// The experiments in service (none by default).
#[derive(Debug, Clone, Default)]
pub struct Experiments(pub Vec<Experiment>);

/// The policy a lead gets, and its arm when an experiment took it.
#[derive(Debug, Clone, Copy)]
pub struct Choice<'a> {
    pub policy: &'a Arc<dyn Policy>,
    /// (experiment, arm).
    pub arm: Option<(&'a Arc<str>, &'a Arc<str>)>,
}

fn fnv(bytes: impl IntoIterator<Item = u8>, mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a's offset basis.
const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

/// The unit's place in [0, 1) for a salt (SplitMix-finalised so nearby ids spread).
fn place(salt: u64, id: &str) -> f64 {
    let mut z = fnv(id.bytes(), salt);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Experiments {
    /// Checks the configuration and builds every arm's policy (all or nothing). `keep` are the
    /// experiments in service: an arm whose policy configuration is unchanged keeps its policy
    /// (and with it any state, such as `dual_price`'s pace). Errors name the entry and the rule.
    pub fn build(
        configs: &[ExperimentConfig],
        network: &Network,
        keep: &Experiments,
    ) -> Result<Self, String> {
        if configs.len() > MAX_EXPERIMENTS {
            return Err(format!(
                "experiments: at most {MAX_EXPERIMENTS}, got {}",
                configs.len()
            ));
        }
        let mut out = Vec::with_capacity(configs.len());
        for (i, e) in configs.iter().enumerate() {
            let at = format!("experiments[{i}]");
            check_name(&format!("{at}.name"), &e.name)?;
            if configs[..i].iter().any(|x| x.name == e.name) {
                return Err(format!("{at}.name: {:?} is used twice", e.name));
            }
            if e.arms.is_empty() || e.arms.len() > MAX_ARMS {
                return Err(format!(
                    "{at}.arms: 1..={MAX_ARMS} arms, got {}",
                    e.arms.len()
                ));
            }
            let mut upper = 0.0;
            let mut arms = Vec::with_capacity(e.arms.len());
            for (k, a) in e.arms.iter().enumerate() {
                let at = format!("{at}.arms[{k}]");
                check_name(&format!("{at}.name"), &a.name)?;
                if e.arms[..k].iter().any(|x| x.name == a.name) {
                    return Err(format!("{at}.name: {:?} is used twice", a.name));
                }
                if !(a.share.is_finite() && a.share > 0.0 && a.share <= 1.0) {
                    return Err(format!("{at}.share: must be in (0, 1], got {}", a.share));
                }
                upper += a.share;
                let kept = keep
                    .0
                    .iter()
                    .filter(|x| *x.name == *e.name)
                    .flat_map(|x| x.arms.iter())
                    .find(|x| *x.name == *a.name && x.config == a.policy)
                    .map(|x| x.policy.clone());
                let policy = match kept {
                    Some(p) => p,
                    None => Arc::from(a.policy.build(network).map_err(|m| format!("{at}.{m}"))?),
                };
                arms.push(Arm {
                    name: a.name.as_str().into(),
                    upper,
                    config: a.policy.clone(),
                    policy,
                });
            }
            if (upper - 1.0).abs() > 1e-9 {
                return Err(format!(
                    "{at}.arms: the shares must add up to 1, got {upper}"
                ));
            }
            // The last arm ends at 1 exactly: no place falls past it.
            if let Some(last) = arms.last_mut() {
                last.upper = f64::INFINITY;
            }
            let salt = e.salt.as_deref().unwrap_or(&e.name);
            out.push(Experiment {
                name: e.name.as_str().into(),
                unit: e.unit,
                segments: e.segments.clone(),
                salt: fnv(salt.bytes().chain([0]), FNV0),
                arms,
            });
        }
        Ok(Self(out))
    }

    /// The policy for `lead` (of `segment`, when segments are in service): the first experiment
    /// that takes it decides; else `default`.
    pub fn choose<'a>(
        &'a self,
        default: &'a Arc<dyn Policy>,
        lead: &Lead,
        segment: Option<u16>,
    ) -> Choice<'a> {
        for e in &self.0 {
            if !e.segments.is_empty() && !segment.is_some_and(|s| e.segments.contains(&s)) {
                continue;
            }
            let id = match e.unit {
                Unit::Member => lead.member_id.as_deref().unwrap_or(&lead.lead_id),
                Unit::Lead => &lead.lead_id,
            };
            let x = place(e.salt, id);
            if let Some(arm) = e.arms.iter().find(|a| x < a.upper) {
                return Choice {
                    policy: &arm.policy,
                    arm: Some((&e.name, &arm.name)),
                };
            }
        }
        Choice {
            policy: default,
            arm: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{RegionTree, demo_files};
    use crate::domain::Channel;

    fn net() -> Network {
        demo_files().load(Arc::new(RegionTree::embedded())).unwrap()
    }

    fn lead(id: &str, member: Option<&str>) -> Lead {
        Lead {
            lead_id: id.into(),
            member_id: member.map(str::to_string),
            channel: Channel::MiniProgram,
            region_code: "440106".into(),
            location: None,
            interests: Vec::new(),
            referrer_guide_id: None,
            occurred_at_ms: 0,
        }
    }

    fn parse(text: &str) -> Vec<ExperimentConfig> {
        #[derive(Deserialize)]
        struct F {
            experiments: Vec<ExperimentConfig>,
        }
        toml::from_str::<F>(text).unwrap().experiments
    }

    const TWO: &str = r#"
[[experiments]]
name = "e1"
[[experiments.arms]]
name = "control"
share = 0.7
policy = { name = "scored" }
[[experiments.arms]]
name = "explore"
share = 0.3
policy = { name = "softmax" }
"#;

    #[test]
    fn members_split_by_share_and_stay_in_their_arm() {
        let net = net();
        let ex = Experiments::build(&parse(TWO), &net, &Experiments::default()).unwrap();
        let default: Arc<dyn Policy> = Arc::from(PolicyConfig::Nearest.build(&net).unwrap());
        let mut explore = 0;
        for m in 0..10_000 {
            let member = format!("m{m}");
            let c = ex.choose(&default, &lead(&format!("l{m}"), Some(&member)), None);
            let (e, arm) = c.arm.unwrap();
            assert_eq!(&**e, "e1");
            assert_eq!(
                c.policy.name(),
                if &**arm == "explore" {
                    "softmax"
                } else {
                    "scored"
                }
            );
            explore += usize::from(&**arm == "explore");
            // Another lead of the same member: the same arm.
            let again = ex.choose(&default, &lead("other", Some(&member)), None);
            assert_eq!(again.arm.unwrap().1, arm);
        }
        assert!((2800..3200).contains(&explore), "{explore}");
        // A rebuild (a reload) keeps both the arms and the policies themselves.
        let again = Experiments::build(&parse(TWO), &net, &ex).unwrap();
        assert!(Arc::ptr_eq(
            &again.0[0].arms[0].policy,
            &ex.0[0].arms[0].policy
        ));
        // Another salt reshuffles.
        let salted = parse(&TWO.replace("name = \"e1\"", "name = \"e1\"\nsalt = \"x\""));
        let other = Experiments::build(&salted, &net, &Experiments::default()).unwrap();
        let moved = (0..1000)
            .filter(|m| {
                let l = lead("l", Some(&format!("m{m}")));
                ex.choose(&default, &l, None).arm.unwrap().1
                    != other.choose(&default, &l, None).arm.unwrap().1
            })
            .count();
        assert!(moved > 200, "{moved}");
    }

    #[test]
    fn segments_and_units_decide_who_is_in() {
        let net = net();
        let text = TWO.replace(
            "name = \"e1\"",
            "name = \"e1\"\nsegments = [2]\nunit = \"lead\"",
        );
        let ex = Experiments::build(&parse(&text), &net, &Experiments::default()).unwrap();
        let default: Arc<dyn Policy> = Arc::from(PolicyConfig::Nearest.build(&net).unwrap());
        let l = lead("l1", Some("m1"));
        assert!(ex.choose(&default, &l, None).arm.is_none());
        assert!(ex.choose(&default, &l, Some(1)).arm.is_none());
        assert_eq!(ex.choose(&default, &l, None).policy.name(), "nearest");
        assert!(ex.choose(&default, &l, Some(2)).arm.is_some());
        // By lead: one member's leads spread over both arms.
        let arms: std::collections::HashSet<String> = (0..200)
            .map(|i| {
                let l = lead(&format!("l{i}"), Some("m1"));
                ex.choose(&default, &l, Some(2)).arm.unwrap().1.to_string()
            })
            .collect();
        assert_eq!(arms.len(), 2);
    }

    #[test]
    fn bad_experiments_are_refused_naming_the_entry() {
        let net = net();
        let none = Experiments::default();
        for (text, want) in [
            (
                TWO.replace("share = 0.3", "share = 0.2"),
                "experiments[0].arms: the shares must add up to 1",
            ),
            (
                TWO.replace("share = 0.3", "share = -0.3"),
                "experiments[0].arms[1].share",
            ),
            (
                TWO.replace("name = \"explore\"", "name = \"control\""),
                "experiments[0].arms[1].name",
            ),
            (
                TWO.replace("name = \"e1\"", "name = \"bad name\""),
                "experiments[0].name",
            ),
            (
                TWO.replace(
                    "policy = { name = \"softmax\" }",
                    "policy = { name = \"softmax\", temperature = 0 }",
                ),
                "experiments[0].arms[1].policy.temperature",
            ),
            (
                format!("{TWO}{}", TWO),
                "experiments[1].name: \"e1\" is used twice",
            ),
        ] {
            let e = Experiments::build(&parse(&text), &net, &none).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
