//! Admission on the rate axis: per-key strategy state in a bounded, sharded table.

mod keys;

pub(crate) use keys::KeyTable;
