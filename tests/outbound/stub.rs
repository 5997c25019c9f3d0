//! A scripted upstream on tokio's clock, wrapped in a coordinator's layer.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tokio::time::Instant;
use tower::util::{BoxCloneSyncService, Oneshot};
use tower::{Layer, ServiceExt};
use tower_adaptive_throttle::outbound::{
    CoordinatorConfig, CoordinatorConfigBuilder, CoordinatorService, Host, RateLimitCoordinator,
};

/// What the stub answers to one call.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// 200.
    Ok,
    /// 429, with this `Retry-After` value if any.
    TooMany(Option<&'static str>),
    /// Any status, with this `Retry-After` value if any.
    Status(u16, Option<&'static str>),
    /// An error instead of a response.
    Fail,
    /// Never answers.
    Hang,
}

/// What the stub saw.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl Seen {
    /// When each call reached the stub, in order.
    pub(crate) fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }

    pub(crate) fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// The most calls the stub was serving at once.
    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Resets the high-water mark of calls in flight.
    pub(crate) fn reset_max(&self) {
        self.max_in_flight
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// The stub's error is a concrete type, not `BoxError`: a future whose inner error is
/// `BoxError` cannot be spawned (rust-lang/rust#64552), as with any tower layer bounding
/// `S::Error: Into<BoxError>`.
pub(crate) type Inner = BoxCloneSyncService<Request<String>, Response<String>, io::Error>;
pub(crate) type Client = CoordinatorService<Inner, Host>;

/// The defaults without jitter and with a fixed seed, so delays are exact.
pub(crate) fn exact() -> CoordinatorConfigBuilder {
    CoordinatorConfig::builder().jitter(0.0).seed(1)
}

/// A stub upstream taking `latency` per call and answering the `n`-th call (from 0) with
/// `script(n)`, behind `coord`'s layer.
pub(crate) fn stub(
    coord: &RateLimitCoordinator,
    latency: Duration,
    script: impl Fn(usize) -> Answer + Send + Sync + 'static,
) -> (Client, Seen) {
    let seen = Seen::default();
    let script = Arc::new(script);
    let by_stub = seen.clone();
    let inner = tower::service_fn(move |_req: Request<String>| {
        let (seen, script) = (by_stub.clone(), script.clone());
        async move {
            let n = {
                let mut arrivals = seen.arrivals.lock().unwrap();
                arrivals.push(Instant::now());
                arrivals.len() - 1
            };
            let now_in = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            seen.max_in_flight.fetch_max(now_in, Ordering::SeqCst);
            let _leave = Leave(seen.in_flight.clone());
            tokio::time::sleep(latency).await;
            let (status, retry_after) = match script(n) {
                Answer::Ok => (200, None),
                Answer::TooMany(r) => (429, r),
                Answer::Status(s, r) => (s, r),
                Answer::Fail => return Err(io::Error::from(io::ErrorKind::ConnectionReset)),
                Answer::Hang => std::future::pending().await,
            };
            let mut response = Response::builder().status(StatusCode::from_u16(status).unwrap());
            if let Some(r) = retry_after {
                response = response.header(http::header::RETRY_AFTER, r);
            }
            Ok(response.body(format!("call {n}")).unwrap())
        }
    });
    (coord.layer().layer(BoxCloneSyncService::new(inner)), seen)
}

/// Decrements the in-flight count however the call ends (answer, error or drop).
struct Leave(Arc<AtomicUsize>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A GET to `http://api.test/`.
pub(crate) fn request() -> Request<String> {
    Request::get("http://api.test/")
        .body(String::new())
        .unwrap()
}

/// One call through `client` (a plain function returning the future, not an `async fn`:
/// spawned tasks hold this type rather than a generator that borrows `client`).
pub(crate) fn call(client: &Client) -> Oneshot<Client, Request<String>> {
    client.clone().oneshot(request())
}

/// The status of a call's response; panics on an error.
pub(crate) async fn status(client: &Client) -> u16 {
    call(client).await.expect("a response").status().as_u16()
}

pub(crate) const KEY: &str = "api.test";

/// `s` seconds, to the millisecond (so sums of them are exact).
pub(crate) fn secs(s: f64) -> Duration {
    Duration::from_millis((s * 1000.0).round() as u64)
}
