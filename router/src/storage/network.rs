//! The network in service: one part of the storage contract.

use super::StorageError;
use crate::catalog::NetworkSpec;

/// The saved network.
pub trait Networks: Send + Sync {
    /// The network last saved, if any.
    fn network(&self) -> Result<Option<NetworkSpec>, StorageError>;

    /// Saves the network in service.
    fn put_network(&self, spec: &NetworkSpec) -> Result<(), StorageError>;
}
