//! A cap on clients following an event stream (`GET /api/v1/events`) at once.
//!
//! Each subscriber holds a connection and a receiver of the pool's events for as long
//! as it stays, so a few thousand of them would starve everything else. A response
//! that is an event stream (`text/event-stream`) takes a slot for as long as its body
//! is being sent; when none is free the client gets 503 with `Retry-After` instead.
//! Requests refused before they stream (a bad token) never take one.

use std::sync::Arc;

use futures::StreamExt;
use poem::http::{header, StatusCode};
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};
use tokio::sync::Semaphore;

/// Seconds a refused subscriber is told to wait before trying again.
const RETRY_AFTER_SECONDS: u32 = 5;

/// The slots for event subscribers, shared by the requests of one server. Given to
/// the app as request data (`.data(EventSlots::new(n))`); without it streams are not
/// capped.
#[derive(Debug, Clone)]
pub struct EventSlots {
    slots: Arc<Semaphore>,
    max: usize,
}

impl EventSlots {
    /// Room for `max` subscribers at once.
    pub fn new(max: usize) -> EventSlots {
        EventSlots {
            slots: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            max,
        }
    }
}

/// Middleware applying the [`EventSlots`] of the request.
#[derive(Debug, Default, Clone, Copy)]
pub struct LimitEventSubscribers;

impl<E: Endpoint> Middleware<E> for LimitEventSubscribers {
    type Output = LimitEventSubscribersEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        LimitEventSubscribersEndpoint { inner }
    }
}

/// An endpoint whose event streams are capped.
pub struct LimitEventSubscribersEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for LimitEventSubscribersEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let slots = req.data::<EventSlots>().cloned();
        let mut resp = self.inner.call(req).await?.into_response();
        let streams = resp.status().is_success()
            && resp
                .content_type()
                .is_some_and(|t| t.starts_with("text/event-stream"));
        let Some(slots) = slots.filter(|_| streams) else {
            return Ok(resp);
        };
        let Ok(slot) = Arc::clone(&slots.slots).try_acquire_owned() else {
            return Ok(busy(slots.max));
        };
        let body = resp.take_body().into_bytes_stream().map(move |chunk| {
            // The slot is given back when the stream is dropped: the client left.
            let _held = &slot;
            chunk
        });
        resp.set_body(Body::from_bytes_stream(body));
        Ok(resp)
    }
}

/// 503 with the JSON error body of the API.
fn busy(max: usize) -> Response {
    let body = serde_json::json!({
        "code": "unavailable",
        "message": format!(
            "too many clients follow the event stream (at most {max} at once); try again later"
        ),
    });
    Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .header(header::RETRY_AFTER, RETRY_AFTER_SECONDS)
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}
