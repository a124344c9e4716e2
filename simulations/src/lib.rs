//! leadrouter-sim: analysts compare routing policies and split rules on the same arrivals,
//! against the hindsight optimum of each day (DESIGN §8). The simulator runs the production
//! engine and policies over the in-memory store.
#![forbid(unsafe_code)]

pub mod cli;
/// The dual bound lives with the models: production learns its prices from it too.
pub use leadrouter_models::{dual, instance};
pub mod explicit;
pub mod flow;
pub mod money;
pub mod ope;
pub mod replay;
pub mod report;
pub mod run;
pub mod scenario;
pub mod svg;
pub mod world;
