use std::sync::Arc;

use tower_layer::Layer;

use super::coordinator::Shared;
use super::key::Host;
use super::service::CoordinatorService;

/// Applies [`CoordinatorService`] with a [`RateLimitCoordinator`](super::RateLimitCoordinator)'s
/// shared state; made by [`RateLimitCoordinator::layer`](super::RateLimitCoordinator::layer).
#[derive(Debug, Clone)]
pub struct CoordinatorLayer<K = Host> {
    shared: Arc<Shared>,
    key: K,
}

impl CoordinatorLayer<Host> {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared, key: Host }
    }
}

impl<K> CoordinatorLayer<K> {
    /// Coordinates by `key` instead of the URI's host: a
    /// [`CoordinationKey`](super::CoordinationKey), such as a closure
    /// `Fn(&Request<B>) -> Option<String>`.
    pub fn key<K2>(self, key: K2) -> CoordinatorLayer<K2> {
        CoordinatorLayer {
            shared: self.shared,
            key,
        }
    }
}

impl<S, K: Clone> Layer<S> for CoordinatorLayer<K> {
    type Service = CoordinatorService<S, K>;

    fn layer(&self, inner: S) -> Self::Service {
        CoordinatorService::new(inner, self.shared.clone(), self.key.clone())
    }
}
