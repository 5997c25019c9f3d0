//! Admission on the rate axis: per-key strategy state in a bounded, sharded table.

mod global;
mod keys;

pub(crate) use global::{GlobalCell, GlobalRate, GlobalView};
pub(crate) use keys::{DigestHasher, KeyTable, Shared};
