//! Automatic replay: [`Replayer::spawn_auto_replay`] starts runs on the throttle's recovery
//! events, and [`AutoReplay`] is the handle that stops it.

use bytes::Bytes;
use http::{Request, Response};
use tokio::sync::broadcast::error::RecvError;
use tower_service::Service;

use super::replayer::Replayer;
use crate::events::ThrottleEvent;
use crate::governance::BreakerState;

impl<S, B, R> Replayer<S, B>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: From<Bytes> + Send + 'static,
{
    /// Spawns a task that starts a run ([`replay_once`](Self::replay_once)) when the breaker
    /// closes, when the limit recovers from its floor to at least `min_recovery` of the initial
    /// limit, when the limit rises through that threshold, when an emergency ends or glass is
    /// broken — each only if the throttle is then healthy and work is pending — and, with
    /// [`ReplayConfigBuilder::poll_interval`](super::ReplayConfigBuilder::poll_interval), periodically. Runs never overlap.
    ///
    /// Must be called within a tokio runtime. Dropping the returned handle stops the task.
    pub fn spawn_auto_replay(&self) -> AutoReplay {
        let replayer = self.clone();
        let mut events = self.throttle.subscribe();
        let task = tokio::spawn(async move {
            loop {
                let received = match replayer.config.poll_interval() {
                    Some(every) => tokio::time::timeout(every, events.recv()).await.ok(),
                    None => Some(events.recv().await),
                };
                let start = match received {
                    // Periodic check.
                    None => true,
                    Some(Ok(event)) => replayer.is_trigger(&event),
                    // Missed events: look at the health directly.
                    Some(Err(RecvError::Lagged(_))) => true,
                    Some(Err(RecvError::Closed)) => break,
                };
                // Health first: it costs nothing, while a durable queue's length is a round
                // trip to its store.
                if start
                    && replayer
                        .health()
                        .blocker(replayer.config.min_recovery())
                        .is_none()
                    && replayer.dlq.waiting().await > 0
                {
                    replayer.replay_once().await;
                }
            }
        });
        AutoReplay { task }
    }
}

impl<S, B> Replayer<S, B> {
    fn is_trigger(&self, event: &ThrottleEvent) -> bool {
        let initial = f64::from(self.throttle.config().initial_limit().max(1));
        let min = self.config.min_recovery();
        match event {
            ThrottleEvent::BreakerStateChanged { to, .. } => *to == BreakerState::Closed,
            ThrottleEvent::LimitRecovered { new, .. } => f64::from(*new) / initial >= min,
            ThrottleEvent::LimitChanged(change) => {
                f64::from(change.previous) / initial < min && f64::from(change.new) / initial >= min
            }
            ThrottleEvent::EmergencyLevelChanged { to, .. } => *to == 0,
            ThrottleEvent::BreakGlass { .. } => true,
            _ => false,
        }
    }
}

/// Handle of the task made by [`Replayer::spawn_auto_replay`]. Dropping it stops the task
/// (a run in progress is cancelled; its unfinished entries go back to the queue).
#[derive(Debug)]
#[must_use = "dropping the handle stops automatic replay"]
pub struct AutoReplay {
    task: tokio::task::JoinHandle<()>,
}

impl AutoReplay {
    /// Stops the task.
    pub fn stop(self) {
        drop(self);
    }

    /// True when the task ended (it ends only when stopped or when the throttle is gone).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for AutoReplay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
