//! Networks as files an operator edits: a directory with `stores.csv`, `guides.csv` and
//! `preference.csv`. Every error names the file, the line and the field.
//!
//! - `stores.csv`: `store_id,name,region_code,lat,lon,ownership,pricing,categories,open` where
//!   `ownership` is `direct|franchise`, `pricing` is `full_price|outlet`, `categories` is a
//!   `;`-separated list and `open` is `true|false`.
//! - `guides.csv`: `guide_id,store_id,name,daily_capacity,tier,status` where `status` is
//!   `active|away|left` and `tier` is 1..=5.
//! - `preference.csv`: `region_code,<category>,<category>,…`: the header names the network's
//!   categories; each row gives a region's affinity in [0, 1] per category; `nationwide` is the
//!   fallback row.

use super::network::{
    Entry, GuideSpec, GuideStatus, Network, NetworkSpec, Ownership, PreferenceRow, Pricing,
    StoreSpec,
};
use super::region::RegionTree;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const STORES_FILE: &str = "stores.csv";
pub const GUIDES_FILE: &str = "guides.csv";
pub const PREFERENCE_FILE: &str = "preference.csv";

/// A network file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read or write {path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}: field `{field}`: {rule}")]
    Invalid {
        file: String,
        line: u64,
        field: String,
        rule: String,
    },
}

/// The three files' contents, with the names to quote in errors.
#[derive(Debug, Clone)]
pub struct NetworkFiles {
    /// Shown in errors before each file name, e.g. the directory.
    pub origin: String,
    pub stores: String,
    pub guides: String,
    pub preference: String,
}

impl NetworkFiles {
    pub fn read_dir(dir: &Path) -> Result<Self, LoadError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| LoadError::Io { path, source })
        };
        Ok(Self {
            origin: dir.display().to_string(),
            stores: read(STORES_FILE)?,
            guides: read(GUIDES_FILE)?,
            preference: read(PREFERENCE_FILE)?,
        })
    }

    pub fn write_dir(&self, dir: &Path) -> Result<(), LoadError> {
        std::fs::create_dir_all(dir).map_err(|source| LoadError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for (name, text) in [
            (STORES_FILE, &self.stores),
            (GUIDES_FILE, &self.guides),
            (PREFERENCE_FILE, &self.preference),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| LoadError::Io { path, source })?;
        }
        Ok(())
    }

    fn name(&self, file: &str) -> String {
        if self.origin.is_empty() {
            file.to_string()
        } else {
            format!("{}/{file}", self.origin.trim_end_matches('/'))
        }
    }

    /// Parses the files into a spec and checks it into a [`Network`].
    pub fn load(&self, regions: Arc<RegionTree>) -> Result<Network, LoadError> {
        let (spec, lines) = self.parse()?;
        Network::build(regions, spec).map_err(|e| {
            let (file, line) = match e.entry {
                Entry::Category(_) => (PREFERENCE_FILE, 1),
                Entry::Preference(i) => (PREFERENCE_FILE, lines.preference[i]),
                Entry::Store(i) => (STORES_FILE, lines.stores[i]),
                Entry::Guide(i) => (GUIDES_FILE, lines.guides[i]),
            };
            LoadError::Invalid {
                file: self.name(file),
                line,
                field: e.error.field,
                rule: e.error.rule,
            }
        })
    }

    /// Parses the files' syntax into a spec; the line of each entry is returned alongside.
    pub fn parse(&self) -> Result<(NetworkSpec, Lines), LoadError> {
        let mut lines = Lines::default();

        let mut t = Table::new(self.name(PREFERENCE_FILE), &self.preference)?;
        let categories: Vec<String> = t
            .headers
            .iter()
            .skip(1)
            .map(|s| s.trim().to_string())
            .collect();
        if t.headers.first().map(|h| h.trim()) != Some("region_code") {
            return Err(t.error(1, "region_code", "the first column must be region_code"));
        }
        let mut preference = Vec::new();
        while let Some(row) = t.next_row()? {
            let region_code = row.get(0).to_string();
            let mut values = Vec::with_capacity(categories.len());
            for (k, c) in categories.iter().enumerate() {
                values.push(row.parse::<f32>(k + 1, c, "a number in [0, 1]")?);
            }
            lines.preference.push(row.line);
            preference.push(PreferenceRow {
                region_code,
                values,
            });
        }

        let mut t = Table::new(self.name(STORES_FILE), &self.stores)?;
        let cols = t.columns(&[
            "store_id",
            "name",
            "region_code",
            "lat",
            "lon",
            "ownership",
            "pricing",
            "categories",
            "open",
        ])?;
        let mut stores = Vec::new();
        while let Some(row) = t.next_row()? {
            let categories: Vec<String> = row
                .get(cols[7])
                .split(';')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            stores.push(StoreSpec {
                store_id: row.get(cols[0]).to_string(),
                name: row.get(cols[1]).to_string(),
                region_code: row.get(cols[2]).to_string(),
                lat: row.parse(cols[3], "lat", "a number in [-90, 90]")?,
                lon: row.parse(cols[4], "lon", "a number in [-180, 180]")?,
                ownership: row.choice(
                    cols[5],
                    "ownership",
                    Ownership::parse,
                    "direct|franchise",
                )?,
                pricing: row.choice(cols[6], "pricing", Pricing::parse, "full_price|outlet")?,
                categories,
                open: row.choice(cols[8], "open", parse_bool, "true|false")?,
            });
            lines.stores.push(row.line);
        }

        let mut t = Table::new(self.name(GUIDES_FILE), &self.guides)?;
        let cols = t.columns(&[
            "guide_id",
            "store_id",
            "name",
            "daily_capacity",
            "tier",
            "status",
        ])?;
        let mut guides = Vec::new();
        while let Some(row) = t.next_row()? {
            guides.push(GuideSpec {
                guide_id: row.get(cols[0]).to_string(),
                store_id: row.get(cols[1]).to_string(),
                name: row.get(cols[2]).to_string(),
                daily_capacity: row.parse(
                    cols[3],
                    "daily_capacity",
                    "a whole number in 1..=10000",
                )?,
                tier: row.parse(cols[4], "tier", "a whole number in 1..=5")?,
                status: row.choice(cols[5], "status", GuideStatus::parse, "active|away|left")?,
            });
            lines.guides.push(row.line);
        }
        Ok((
            NetworkSpec {
                categories,
                preference,
                stores,
                guides,
            },
            lines,
        ))
    }

    /// Writes a spec as files (the inverse of [`NetworkFiles::parse`]).
    pub fn from_spec(spec: &NetworkSpec) -> Self {
        let mut p = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["region_code".to_string()];
        header.extend(spec.categories.iter().cloned());
        p.write_record(&header).expect("in-memory csv");
        for row in &spec.preference {
            let mut rec = vec![row.region_code.clone()];
            rec.extend(row.values.iter().map(|v| format!("{v}")));
            p.write_record(&rec).expect("in-memory csv");
        }
        let mut s = csv::Writer::from_writer(Vec::new());
        s.write_record([
            "store_id",
            "name",
            "region_code",
            "lat",
            "lon",
            "ownership",
            "pricing",
            "categories",
            "open",
        ])
        .expect("in-memory csv");
        for st in &spec.stores {
            s.write_record([
                st.store_id.as_str(),
                st.name.as_str(),
                st.region_code.as_str(),
                &format!("{:.6}", st.lat),
                &format!("{:.6}", st.lon),
                st.ownership.as_str(),
                st.pricing.as_str(),
                &st.categories.join(";"),
                if st.open { "true" } else { "false" },
            ])
            .expect("in-memory csv");
        }
        let mut g = csv::Writer::from_writer(Vec::new());
        g.write_record([
            "guide_id",
            "store_id",
            "name",
            "daily_capacity",
            "tier",
            "status",
        ])
        .expect("in-memory csv");
        for gd in &spec.guides {
            g.write_record([
                gd.guide_id.as_str(),
                gd.store_id.as_str(),
                gd.name.as_str(),
                &gd.daily_capacity.to_string(),
                &gd.tier.to_string(),
                gd.status.as_str(),
            ])
            .expect("in-memory csv");
        }
        let text = |w: csv::Writer<Vec<u8>>| {
            String::from_utf8(w.into_inner().expect("in-memory csv")).expect("utf-8 in, utf-8 out")
        };
        Self {
            origin: String::new(),
            stores: text(s),
            guides: text(g),
            preference: text(p),
        }
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Line of each spec entry in its file (1-based, header is line 1).
#[derive(Debug, Default, Clone)]
pub struct Lines {
    pub preference: Vec<u64>,
    pub stores: Vec<u64>,
    pub guides: Vec<u64>,
}

struct Table<'a> {
    file: String,
    headers: Vec<String>,
    reader: csv::Reader<&'a [u8]>,
}

struct Row<'a> {
    file: &'a str,
    line: u64,
    rec: csv::StringRecord,
}

impl<'a> Table<'a> {
    fn new(file: String, text: &'a str) -> Result<Self, LoadError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| LoadError::Invalid {
                file: file.clone(),
                line: 1,
                field: "header".into(),
                rule: e.to_string(),
            })?
            .iter()
            .map(str::to_string)
            .collect();
        Ok(Self {
            file,
            headers,
            reader,
        })
    }

    fn error(&self, line: u64, field: &str, rule: impl fmt::Display) -> LoadError {
        LoadError::Invalid {
            file: self.file.clone(),
            line,
            field: field.into(),
            rule: rule.to_string(),
        }
    }

    fn columns(&self, names: &[&str]) -> Result<Vec<usize>, LoadError> {
        names
            .iter()
            .map(|n| {
                self.headers.iter().position(|h| h == n).ok_or_else(|| {
                    self.error(
                        1,
                        n,
                        format!("missing column (header: {})", self.headers.join(",")),
                    )
                })
            })
            .collect()
    }

    fn next_row(&mut self) -> Result<Option<Row<'_>>, LoadError> {
        let mut rec = csv::StringRecord::new();
        match self.reader.read_record(&mut rec) {
            Ok(false) => Ok(None),
            Ok(true) => {
                let line = rec.position().map_or(0, |p| p.line());
                if rec.len() != self.headers.len() {
                    return Err(self.error(
                        line,
                        "row",
                        format!(
                            "has {} fields, the header has {}",
                            rec.len(),
                            self.headers.len()
                        ),
                    ));
                }
                Ok(Some(Row {
                    file: &self.file,
                    line,
                    rec,
                }))
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                Err(self.error(line, "row", e))
            }
        }
    }
}

impl Row<'_> {
    fn get(&self, i: usize) -> &str {
        self.rec.get(i).unwrap_or("")
    }

    fn err(&self, field: &str, rule: String) -> LoadError {
        LoadError::Invalid {
            file: self.file.to_string(),
            line: self.line,
            field: field.to_string(),
            rule,
        }
    }

    fn parse<T: std::str::FromStr>(
        &self,
        i: usize,
        field: &str,
        what: &str,
    ) -> Result<T, LoadError> {
        let v = self.get(i);
        v.parse()
            .map_err(|_| self.err(field, format!("must be {what}, got {v:?}")))
    }

    fn choice<T>(
        &self,
        i: usize,
        field: &str,
        parse: impl Fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Result<T, LoadError> {
        let v = self.get(i);
        parse(v).ok_or_else(|| self.err(field, format!("must be one of {allowed}, got {v:?}")))
    }
}
