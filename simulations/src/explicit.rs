//! Explicit instances: analysts bring their own scored data as CSV files and get the day's
//! yardsticks, e.g. to reproduce a textbook instance or to score an assignment they made.
//!
//! - `edges.csv`: header `lead,guide,value`; one row per possible (lead, guide) with the value
//!   of that assignment (finite, >= 0). Leads arrive in the order they first appear.
//! - `capacities.csv`: header `guide,capacity`; every guide named in the edges, once.
//! - optionally `assignment.csv`: header `lead,guide`; a lead at most once, the guide empty
//!   for an unplaced lead. Its value is checked against the capacities and reported against
//!   the optimum.
//!
//! Errors name the file, the line and the field.

use crate::instance::Instance;
use std::collections::HashMap;
use std::path::Path;

/// An instance read from files, with the ids of its leads and guides.
#[derive(Debug, Clone)]
pub struct Explicit {
    pub instance: Instance,
    pub lead_ids: Vec<String>,
    pub guide_ids: Vec<String>,
}

/// What went wrong reading the files.
#[derive(Debug, thiserror::Error)]
pub enum ExplicitError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Bad {
        file: String,
        line: u64,
        message: String,
    },
}

fn bad(file: &Path, line: u64, message: impl Into<String>) -> ExplicitError {
    ExplicitError::Bad {
        file: file.display().to_string(),
        line,
        message: message.into(),
    }
}

fn reader(path: &Path, header: &[&str]) -> Result<csv::Reader<std::fs::File>, ExplicitError> {
    let f = std::fs::File::open(path).map_err(|source| ExplicitError::Io {
        file: path.display().to_string(),
        source,
    })?;
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(f);
    let got: Vec<String> = r
        .headers()
        .map_err(|e| bad(path, 1, e.to_string()))?
        .iter()
        .map(str::to_string)
        .collect();
    if got != header {
        return Err(bad(
            path,
            1,
            format!("header must be {}, got {}", header.join(","), got.join(",")),
        ));
    }
    Ok(r)
}

fn rows(
    path: &Path,
    header: &[&str],
    mut f: impl FnMut(u64, &csv::StringRecord) -> Result<(), ExplicitError>,
) -> Result<(), ExplicitError> {
    let mut r = reader(path, header)?;
    for rec in r.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            bad(path, line, e.to_string())
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        f(line, &rec)?;
    }
    Ok(())
}

fn id(path: &Path, line: u64, field: &str, v: &str) -> Result<String, ExplicitError> {
    if v.is_empty() || v.len() > 128 {
        return Err(bad(path, line, format!("{field}: must be 1..=128 bytes")));
    }
    Ok(v.to_string())
}

impl Explicit {
    /// Reads `edges` and `capacities`.
    pub fn read(edges: &Path, capacities: &Path) -> Result<Self, ExplicitError> {
        let mut guide_ids = Vec::new();
        let mut guide_index: HashMap<String, u32> = HashMap::new();
        let mut caps = Vec::new();
        rows(capacities, &["guide", "capacity"], |line, rec| {
            let g = id(capacities, line, "guide", &rec[0])?;
            let c: u32 = rec[1].parse().map_err(|_| {
                bad(
                    capacities,
                    line,
                    format!("capacity: must be a whole number >= 0, got {:?}", &rec[1]),
                )
            })?;
            if guide_index.insert(g.clone(), caps.len() as u32).is_some() {
                return Err(bad(capacities, line, format!("guide: {g:?} appears twice")));
            }
            guide_ids.push(g);
            caps.push(c);
            Ok(())
        })?;
        let mut lead_ids: Vec<String> = Vec::new();
        let mut lead_index: HashMap<String, usize> = HashMap::new();
        let mut per_lead: Vec<Vec<(u32, f32)>> = Vec::new();
        rows(edges, &["lead", "guide", "value"], |line, rec| {
            let l = id(edges, line, "lead", &rec[0])?;
            let g = id(edges, line, "guide", &rec[1])?;
            let &gi = guide_index.get(&g).ok_or_else(|| {
                bad(
                    edges,
                    line,
                    format!("guide: {g:?} is not in {}", capacities.display()),
                )
            })?;
            let v: f32 = rec[2]
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    bad(
                        edges,
                        line,
                        format!("value: must be a finite number >= 0, got {:?}", &rec[2]),
                    )
                })?;
            let li = *lead_index.entry(l.clone()).or_insert_with(|| {
                lead_ids.push(l);
                per_lead.push(Vec::new());
                per_lead.len() - 1
            });
            if per_lead[li].iter().any(|&(x, _)| x == gi) {
                return Err(bad(
                    edges,
                    line,
                    format!("lead {:?} and guide {g:?} appear twice", lead_ids[li]),
                ));
            }
            per_lead[li].push((gi, v));
            Ok(())
        })?;
        let mut instance = Instance::new(caps);
        for e in per_lead {
            instance
                .push_lead(e)
                .map_err(|e| bad(edges, 0, e.to_string()))?;
        }
        Ok(Self {
            instance,
            lead_ids,
            guide_ids,
        })
    }

    /// Reads an assignment of this instance's leads.
    pub fn read_assignment(&self, path: &Path) -> Result<Vec<Option<u32>>, ExplicitError> {
        let leads: HashMap<&str, usize> = self
            .lead_ids
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let guides: HashMap<&str, u32> = self
            .guide_ids
            .iter()
            .enumerate()
            .map(|(j, g)| (g.as_str(), j as u32))
            .collect();
        let mut out = vec![None; self.lead_ids.len()];
        let mut seen = vec![false; self.lead_ids.len()];
        let mut used = vec![0u32; self.guide_ids.len()];
        rows(path, &["lead", "guide"], |line, rec| {
            let &i = leads
                .get(&rec[0])
                .ok_or_else(|| bad(path, line, format!("lead: {:?} has no edges", &rec[0])))?;
            if std::mem::replace(&mut seen[i], true) {
                return Err(bad(
                    path,
                    line,
                    format!("lead: {:?} appears twice", &rec[0]),
                ));
            }
            if rec[1].is_empty() {
                return Ok(());
            }
            let &j = guides
                .get(&rec[1])
                .ok_or_else(|| bad(path, line, format!("guide: {:?} is unknown", &rec[1])))?;
            if self.instance.value(i, j) == 0.0 && !self.instance.edges(i).0.contains(&j) {
                return Err(bad(
                    path,
                    line,
                    format!("guide: lead {:?} has no edge to {:?}", &rec[0], &rec[1]),
                ));
            }
            used[j as usize] += 1;
            if used[j as usize] > self.instance.capacities()[j as usize] {
                return Err(bad(
                    path,
                    line,
                    format!(
                        "guide: {:?} is given more than its capacity {}",
                        &rec[1],
                        self.instance.capacities()[j as usize]
                    ),
                ));
            }
            out[i] = Some(j);
            Ok(())
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_a_textbook_instance_and_scores_an_assignment() {
        let d = tempfile::tempdir().unwrap();
        // Karp–Vazirani–Vazirani's upper-triangular instance, n = 3: greedy in the wrong order
        // places 2 of 3; the optimum places all.
        let e = write(
            d.path(),
            "e.csv",
            "lead,guide,value\nl1,g3,1\nl2,g2,1\nl2,g3,1\nl3,g1,1\nl3,g2,1\nl3,g3,1\n",
        );
        let c = write(d.path(), "c.csv", "guide,capacity\ng1,1\ng2,1\ng3,1\n");
        let x = Explicit::read(&e, &c).unwrap();
        assert_eq!(x.lead_ids, ["l1", "l2", "l3"]);
        assert_eq!(flow::solve(&x.instance).value, 3.0);
        let a = write(d.path(), "a.csv", "lead,guide\nl3,g3\nl2,g2\nl1,\n");
        let asg = x.read_assignment(&a).unwrap();
        assert_eq!(x.instance.value_of(&asg).unwrap(), 2.0);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let d = tempfile::tempdir().unwrap();
        let c = write(d.path(), "c.csv", "guide,capacity\ng1,2\ng2,x\n");
        let e = write(d.path(), "e.csv", "lead,guide,value\nl1,g1,1\n");
        let err = Explicit::read(&e, &c).unwrap_err().to_string();
        assert!(err.contains("c.csv:3: capacity"), "{err}");
        let c = write(d.path(), "c.csv", "guide,capacity\ng1,2\n");
        for (text, want) in [
            ("lead,guide,value\nl1,g1,-1\n", "e.csv:2: value"),
            ("lead,guide,value\nl1,g9,1\n", "e.csv:2: guide"),
            (
                "lead,guide,value\nl1,g1,1\nl1,g1,2\n",
                "e.csv:3: lead \"l1\" and guide",
            ),
            ("lead,guide,val\n", "e.csv:1: header"),
            ("lead,guide,value\n,g1,1\n", "e.csv:2: lead"),
        ] {
            let e = write(d.path(), "e.csv", text);
            let err = Explicit::read(&e, &c).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
        let e = write(
            d.path(),
            "e.csv",
            "lead,guide,value\nl1,g1,1\nl2,g1,1\nl3,g1,1\n",
        );
        let x = Explicit::read(&e, &c).unwrap();
        let a = write(d.path(), "a.csv", "lead,guide\nl1,g1\nl2,g1\nl3,g1\n");
        let err = x.read_assignment(&a).unwrap_err().to_string();
        assert!(err.contains("a.csv:4: guide"), "{err}");
        let err = Explicit::read(&d.path().join("none.csv"), &c)
            .unwrap_err()
            .to_string();
        assert!(err.contains("none.csv"), "{err}");
    }
}
