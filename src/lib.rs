//! casework: a workflow engine for customer-service operations.
pub use casework_core::*;
