//! [`Swappable`]: a key or tier extractor that can be replaced while the service runs.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::Request;

use super::key::KeyExtractor;
use super::tier::TierExtractor;
use crate::Tier;

/// Wraps a key or tier extractor so it can be replaced at runtime, atomically, without
/// rebuilding the layer or losing any throttle state: requests in flight finish with the
/// extractor they started with, later ones use the new one. Clones share the slot.
///
/// ```
/// use http::HeaderName;
/// use tower_adaptive_throttle::http::{Swappable, TierHeader};
/// use tower_adaptive_throttle::{AdaptiveThrottleLayer, ThrottleConfig};
///
/// let tiers = Swappable::new(TierHeader::new(HeaderName::from_static("x-priority")));
/// let layer = AdaptiveThrottleLayer::new(ThrottleConfig::default()).tier_extractor(tiers.clone());
/// // Later, from an admin task: read the tier from another header.
/// tiers.swap(TierHeader::new(HeaderName::from_static("x-tier")));
/// # drop(layer);
/// ```
pub struct Swappable<E> {
    slot: Arc<ArcSwap<E>>,
}

impl<E> Swappable<E> {
    /// A slot holding `extractor`.
    pub fn new(extractor: E) -> Self {
        Self {
            slot: Arc::new(ArcSwap::from_pointee(extractor)),
        }
    }

    /// Replaces the extractor; returns the previous one.
    pub fn swap(&self, extractor: E) -> Arc<E> {
        self.slot.swap(Arc::new(extractor))
    }

    /// The extractor in force.
    pub fn current(&self) -> Arc<E> {
        self.slot.load_full()
    }
}

impl<E> Clone for Swappable<E> {
    fn clone(&self) -> Self {
        Self {
            slot: self.slot.clone(),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for Swappable<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Swappable")
            .field(&*self.slot.load())
            .finish()
    }
}

impl<B, E: KeyExtractor<B>> KeyExtractor<B> for Swappable<E> {
    type Key = E::Key;

    fn extract(&self, req: &Request<B>) -> Option<Self::Key> {
        self.slot.load().extract(req)
    }
}

impl<B, E: TierExtractor<B>> TierExtractor<B> for Swappable<E> {
    fn tier(&self, req: &Request<B>) -> Tier {
        self.slot.load().tier(req)
    }
}
