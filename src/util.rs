//! Small helpers shared by the crate.

/// SplitMix64: a tiny, seedable generator for jitter and sampling (not for security).
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed that differs between throttles and processes.
pub(crate) fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::RandomState::default().hash_one(std::time::SystemTime::now())
}

/// Consuming builder setters `fn name(mut self, value: T) -> Self` that store into
/// `self.cfg.name` (the config builders' shape).
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.cfg.$name = value;
            self
        }
    )*};
}
pub(crate) use setters;
