//! Regional preference: how strongly each region buys each category.
//!
//! Rows are regions (keyed by their 12-digit GB/T 2260 code as a `u64`), columns are categories.
//! Values are affinities in `[0, 1]`. A lookup takes the region chain of a place, most specific
//! first (district, city, province, then the nationwide key `0`), and returns the first row present,
//! so thin regions fall back to their parents.

use ndarray::{Array2, ArrayView1};
use std::collections::HashMap;

/// The key of the nationwide row.
pub const NATIONWIDE: u64 = 0;

/// Errors building a matrix; each names what is wrong.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PreferenceError {
    #[error("category {0:?} appears twice")]
    DuplicateCategory(String),
    #[error("region {0} appears twice")]
    DuplicateRegion(u64),
    #[error("region {region}: row has {got} values, expected one per category ({expected})")]
    WrongShape {
        region: u64,
        got: usize,
        expected: usize,
    },
    #[error(
        "region {region}, category {category:?}: value {value} is not a finite number in [0, 1]"
    )]
    OutOfRange {
        region: u64,
        category: String,
        value: f32,
    },
    #[error("the matrix has no categories")]
    NoCategories,
}

/// A region × category affinity matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferenceMatrix {
    categories: Vec<String>,
    rows: HashMap<u64, usize>,
    values: Array2<f32>,
}

impl PreferenceMatrix {
    /// Builds a matrix from rows `(region, values)`, one value per category in `categories` order.
    pub fn new(
        categories: Vec<String>,
        rows: Vec<(u64, Vec<f32>)>,
    ) -> Result<Self, PreferenceError> {
        if categories.is_empty() {
            return Err(PreferenceError::NoCategories);
        }
        for (i, c) in categories.iter().enumerate() {
            if categories[..i].contains(c) {
                return Err(PreferenceError::DuplicateCategory(c.clone()));
            }
        }
        let n = categories.len();
        let mut values = Array2::<f32>::zeros((rows.len(), n));
        let mut index = HashMap::with_capacity(rows.len());
        for (r, (region, row)) in rows.into_iter().enumerate() {
            if row.len() != n {
                return Err(PreferenceError::WrongShape {
                    region,
                    got: row.len(),
                    expected: n,
                });
            }
            if index.insert(region, r).is_some() {
                return Err(PreferenceError::DuplicateRegion(region));
            }
            for (c, v) in row.into_iter().enumerate() {
                if !v.is_finite() || !(0.0..=1.0).contains(&v) {
                    return Err(PreferenceError::OutOfRange {
                        region,
                        category: categories[c].clone(),
                        value: v,
                    });
                }
                values[(r, c)] = v;
            }
        }
        Ok(Self {
            categories,
            rows: index,
            values,
        })
    }

    /// Category names, in column order.
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// Column of a category.
    pub fn category_index(&self, name: &str) -> Option<usize> {
        self.categories.iter().position(|c| c == name)
    }

    /// Number of region rows.
    pub fn regions(&self) -> usize {
        self.rows.len()
    }

    /// The row of exactly this region, if it has one.
    pub fn row(&self, region: u64) -> Option<ArrayView1<'_, f32>> {
        self.rows.get(&region).map(|&r| self.values.row(r))
    }

    /// The first row found along `chain` (most specific region first). `None` when no region of
    /// the chain, nationwide included, has a row.
    pub fn lookup(
        &self,
        chain: impl IntoIterator<Item = u64>,
    ) -> Option<(u64, ArrayView1<'_, f32>)> {
        chain
            .into_iter()
            .find_map(|region| self.row(region).map(|row| (region, row)))
    }

    /// Every row as `(region, values)`, sorted by region code.
    pub fn rows(&self) -> Vec<(u64, Vec<f32>)> {
        let mut out: Vec<_> = self
            .rows
            .iter()
            .map(|(&region, &r)| (region, self.values.row(r).to_vec()))
            .collect();
        out.sort_by_key(|(region, _)| *region);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats() -> Vec<String> {
        vec!["shoes".into(), "kids".into()]
    }

    #[test]
    fn lookup_falls_back_up_the_chain() {
        let m = PreferenceMatrix::new(
            cats(),
            vec![(440000000000, vec![0.9, 0.1]), (NATIONWIDE, vec![0.5, 0.5])],
        )
        .unwrap();
        let (hit, row) = m
            .lookup([440106000000, 440100000000, 440000000000, NATIONWIDE])
            .unwrap();
        assert_eq!(hit, 440000000000);
        assert_eq!(row.to_vec(), vec![0.9, 0.1]);
        let (hit, _) = m.lookup([110105000000, 110000000000, NATIONWIDE]).unwrap();
        assert_eq!(hit, NATIONWIDE);
        assert!(m.lookup([110105000000]).is_none());
    }

    #[test]
    fn rejects_bad_rows() {
        assert_eq!(
            PreferenceMatrix::new(cats(), vec![(1, vec![0.5])]),
            Err(PreferenceError::WrongShape {
                region: 1,
                got: 1,
                expected: 2
            })
        );
        assert!(matches!(
            PreferenceMatrix::new(cats(), vec![(1, vec![0.5, f32::NAN])]),
            Err(PreferenceError::OutOfRange { .. })
        ));
        assert!(matches!(
            PreferenceMatrix::new(cats(), vec![(1, vec![0.5, 1.5])]),
            Err(PreferenceError::OutOfRange { .. })
        ));
        assert_eq!(
            PreferenceMatrix::new(cats(), vec![(1, vec![0.5, 0.5]), (1, vec![0.1, 0.1])]),
            Err(PreferenceError::DuplicateRegion(1))
        );
        assert_eq!(
            PreferenceMatrix::new(vec!["a".into(), "a".into()], vec![]),
            Err(PreferenceError::DuplicateCategory("a".into()))
        );
        assert_eq!(
            PreferenceMatrix::new(vec![], vec![]),
            Err(PreferenceError::NoCategories)
        );
    }
}
