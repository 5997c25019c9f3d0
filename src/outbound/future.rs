//! [`ResponseFuture`]: wait (when the key is cooling down), poll the inner service ready, call
//! it, and report the response to the coordinator.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::error::{BoxError, Deferred};
use super::ticket::Ticket;

/// A call's wait for its turn; boxed, as it is only made for calls on a rate-limited key.
pub(crate) type Admission = Pin<Box<dyn Future<Output = Result<Ticket, Deferred>> + Send>>;

pin_project! {
    /// Response future of [`CoordinatorService`](super::CoordinatorService).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, B> {
        // Sleeping through the cooldown or waiting on the canary; `pending` is a fresh clone of
        // the inner service and the request.
        Waiting { wait: Admission, pending: Option<(S, Request<B>)> },
        // Let through; the clone is polled ready before the call.
        Readying { pending: Option<(S, Request<B>, Ticket)> },
        Calling { #[pin] call: F, ticket: Option<Ticket> },
        Refused { deferred: Option<Deferred> },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(crate) fn calling(call: S::Future, ticket: Option<Ticket>) -> Self {
        Self {
            state: State::Calling { call, ticket },
        }
    }

    pub(crate) fn waiting(wait: Admission, service: S, request: Request<B>) -> Self {
        Self {
            state: State::Waiting {
                wait,
                pending: Some((service, request)),
            },
        }
    }

    pub(crate) fn refused(deferred: Deferred) -> Self {
        Self {
            state: State::Refused {
                deferred: Some(deferred),
            },
        }
    }
}

impl<S, B> std::fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Waiting { .. } => "waiting",
            State::Readying { .. } => "readying",
            State::Calling { .. } => "calling",
            State::Refused { .. } => "refused",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

const POLLED_AFTER_COMPLETION: &str = "ResponseFuture polled after completion";

impl<S, B, ResBody> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Waiting { wait, pending } => {
                    let ticket = match ready!(wait.as_mut().poll(cx)) {
                        Ok(ticket) => ticket,
                        // Boxed as itself (not as a `Box<Deferred>`), so `downcast_ref` finds it.
                        Err(deferred) => return Poll::Ready(Err(deferred.into())),
                    };
                    let (service, request) = pending.take().expect(POLLED_AFTER_COMPLETION);
                    state.set(State::Readying {
                        pending: Some((service, request, ticket)),
                    });
                }
                StateProj::Readying { pending } => {
                    let (service, _, _) = pending.as_mut().expect(POLLED_AFTER_COMPLETION);
                    if let Err(e) = ready!(service.poll_ready(cx)) {
                        // Dropping the ticket hands a canary role on.
                        pending.take();
                        return Poll::Ready(Err(e.into()));
                    }
                    let (mut service, request, ticket) =
                        pending.take().expect(POLLED_AFTER_COMPLETION);
                    let call = service.call(request);
                    state.set(State::Calling {
                        call,
                        ticket: Some(ticket),
                    });
                }
                StateProj::Calling { call, ticket } => {
                    let result = ready!(call.poll(cx));
                    let ticket = ticket.take();
                    return Poll::Ready(match result {
                        Ok(response) => {
                            if let Some(t) = ticket {
                                t.on_response(response.status(), response.headers());
                            }
                            Ok(response)
                        }
                        // The ticket drops here: an error is no verdict on the rate limit.
                        Err(e) => Err(e.into()),
                    });
                }
                StateProj::Refused { deferred } => {
                    let d = deferred.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Err(d.into()));
                }
            }
        }
    }
}
