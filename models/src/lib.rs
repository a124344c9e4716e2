//! Learned and computed models for leadrouter. Pure: no tokio, tonic or sled, so the service, the
//! simulator and offline tools all share them.
//!
//! Layout:
//! - [`fairness`]: the Gini of guides' loads and how many are idle.
//! - [`instance`] and [`dual`]: a day as an assignment instance (leads, guides with capacities,
//!   valued edges) and its Lagrangian dual bound, whose multipliers are the guides' capacity
//!   prices (`dual_price`'s learned prices, and the simulator's yardstick for large days).
//! - [`prices`]: guides' capacity prices learned from days of history by that bound.
//! - [`skill`]: each guide's conversion rate, shrunk towards the store's and tier's rates.
//! - [`attribution`]: multi-touch attribution models (first, last, linear, time decay, position
//!   based, Markov removal effect) over aggregated journeys.
//! - [`ope`]: off-policy evaluation (IPS, SNIPS, DM, DR with bootstrap intervals and support
//!   checks) and Thompson sampling's action distribution.
//! - [`preference`]: the regional preference matrix (region × category), looked up with fallback up
//!   the region tree.
//! - [`preference_fit`]: learning that matrix from orders, with time decay and shrinkage up the
//!   region tree, as a versioned artifact.
//! - [`propensity`]: conversion propensity by logistic regression (linfa-logistic) on routing
//!   features, with a time-ordered validation, AUC, log-loss and calibration.
//! - [`rng`]: SplitMix64, the seeded generator whose sequence is fixed forever.
//! - [`segments`]: member segments by k-means (linfa-clustering) over tag vectors.
#![forbid(unsafe_code)]

pub mod attribution;
pub mod dual;
pub mod fairness;
pub mod instance;
pub mod ope;
pub mod preference;
pub mod preference_fit;
pub mod prices;
pub mod propensity;
pub mod rng;
pub mod segments;
pub mod skill;

pub use preference::{PreferenceError, PreferenceMatrix};
