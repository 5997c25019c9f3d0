//! What the gRPC tests share: a body of fixed frames, hand-written gRPC services that answer as
//! a failing server would, a tonic server behind a layer on a loopback port, and a channel to it.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use tonic::server::NamedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use tower_adaptive_throttle::{AdaptiveThrottleLayer, KeyExtractor, TierExtractor};

use crate::support::local_listener;

/// Every wait on a socket is bounded by this: a hung test fails instead of hanging CI.
pub(crate) const BOUND: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test after [`BOUND`].
pub(crate) async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(BOUND, f)
        .await
        .expect("bounded wait elapsed")
}

/// A response body made of fixed frames: data, then (optionally) trailers.
#[derive(Debug, Default)]
pub(crate) struct Frames(VecDeque<Frame<Bytes>>);

impl Frames {
    /// `messages` as gRPC-framed data frames, then trailers with `grpc-status: status` (none
    /// when `status` is `None`).
    pub(crate) fn grpc(messages: &[&[u8]], status: Option<u32>) -> Self {
        let mut frames: VecDeque<_> = messages
            .iter()
            .map(|m| Frame::data(grpc_frame(m)))
            .collect();
        if let Some(code) = status {
            frames.push_back(Frame::trailers(grpc_status(code)));
        }
        Self(frames)
    }
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// One gRPC length-prefixed message: uncompressed flag, big-endian length, bytes.
pub(crate) fn grpc_frame(message: &[u8]) -> Bytes {
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    out.extend_from_slice(message);
    out.into()
}

/// A header map with `grpc-status: code`.
pub(crate) fn grpc_status(code: u32) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("grpc-status", HeaderValue::from(code));
    h
}

/// `HealthCheckResponse { status: SERVING }` in protobuf: field 1, varint 1.
pub(crate) const SERVING: &[u8] = &[0x08, 0x01];

/// How a [`Failing`] service answers every call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer {
    /// Trailers-only: HTTP 200 with `grpc-status` in the headers and no body.
    TrailersOnly(u32),
    /// A message, then trailers with `grpc-status`: a streamed answer that fails at its end.
    Streamed(u32),
}

/// A hand-written gRPC service standing in for the Health service (same name, so tonic-health's
/// client calls it), answering every call as `answer` says.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failing(pub(crate) Answer);

impl NamedService for Failing {
    const NAME: &'static str = "grpc.health.v1.Health";
}

impl<B> tower::Service<Request<B>> for Failing {
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        let res = match self.0 {
            Answer::TrailersOnly(code) => {
                let mut res = Response::new(tonic::body::Body::empty());
                res.headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/grpc"));
                res.headers_mut().extend(grpc_status(code));
                res
            }
            Answer::Streamed(code) => {
                let mut res =
                    Response::new(tonic::body::Body::new(Frames::grpc(&[SERVING], Some(code))));
                res.headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/grpc"));
                res
            }
        };
        std::future::ready(Ok(res))
    }
}

/// Serves `service` behind `layer` (tonic's `Server::builder().layer(..)`, the one line a
/// tonic user adds) on a loopback port.
pub(crate) async fn serve<K, T, S>(layer: AdaptiveThrottleLayer<K, T>, service: S) -> SocketAddr
where
    K: KeyExtractor<tonic::body::Body> + Clone + Send + Sync + 'static,
    T: TierExtractor<tonic::body::Body> + Clone + Send + Sync + 'static,
    S: tower::Service<Request<tonic::body::Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    let (listener, addr) = local_listener().await;
    let router = Server::builder().layer(layer).add_service(service);
    tokio::spawn(router.serve_with_incoming(TcpIncoming::from(listener)));
    addr
}

/// A channel to `addr`, connected.
pub(crate) async fn channel(addr: SocketAddr) -> Channel {
    let endpoint = Channel::from_shared(format!("http://{addr}")).unwrap();
    bounded(endpoint.connect()).await.expect("connects")
}

/// One health check through `client`: the status code tonic reports, and the status itself
/// when the call failed.
pub(crate) async fn check<T>(client: &mut HealthClient<T>) -> Result<(), tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let request = HealthCheckRequest {
        service: String::new(),
    };
    bounded(client.check(request)).await.map(|_| ())
}
