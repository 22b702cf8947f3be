//! Forwarding a request to an upstream: one attempt loop that picks each target, reports every
//! attempt's outcome to the target's health, and tries again where the route's retry policy says so.

mod exchange;
pub mod mirror;
mod replay;
pub mod retry;
mod trace_head;

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use bytes::Bytes;
use floodgate_plugins::{RequestCtx, UpstreamRequest};
use floodgate_trace::AttemptOutcome;
use floodgate_upstream::breaker::{BreakerReason, Permit};
use floodgate_upstream::health::{AttemptResult, Eligible, Millis, Nanos};
use floodgate_upstream::{InFlightGuard, PickContext};
use http::uri::PathAndQuery;
use http::{header, HeaderMap, HeaderValue, Request, Response};
use http_body::Body as _;
use trace_head::TraceHead;

use self::exchange::{body_error, exchange, upgrade_allowed, Answer, ExchangeError};
use self::replay::Replay;
use self::retry::{retry_after, Tried};
use crate::endpoints::Current;
use crate::error::ProxyError;
use crate::headers::{
    clean_request_fields, client_host, is_upgrade, remove_hop_by_hop, scan, Forwarded,
};
use crate::plugin_phases::upstream_request_phase;
use crate::request_body::{ClientBody, RequestBody};
use crate::request_state::{Session, UpstreamUsed};
use crate::response_body::ResponseBody;
use crate::snapshot::{Endpoints, RouteRuntime, UpstreamRuntime};
use crate::upstream::failure::{AttemptFailure, FailureClass};
use crate::upstream::WorkerPools;
use crate::worker_ctx::WorkerCtx;

/// Picks a target, sends the request (on a pooled connection when one is ready), and returns the upstream's
/// response with its body streaming through. The route's timeout runs from `started`, when the request
/// arrived, until the response head, over every attempt together.
///
/// Not an `async fn`, which would hold `req` twice in its future (see `handle`).
#[allow(clippy::manual_async_fn)]
// an `async fn` would hold its arguments twice (see `handle`)
// Inlined into the handler so its future is built in place in the handler's: called, it returns that
// future by value, and moving it costs a copy of a few kilobytes per request (measured: about 300
// instructions per request with callgrind).
#[inline(always)]
pub fn forward<'a>(
    session: &'a Session<'a>,
    route: &'a RouteRuntime,
    upstream: &'a Arc<UpstreamRuntime>,
    req: Request<ClientBody>,
    plugins: Option<&RequestCtx>,
    used: &'a mut UpstreamUsed,
) -> impl Future<Output = Result<Outcome, ProxyError>> + use<'a> {
    // Everything before sending is synchronous and done here, before the future exists: the future then
    // holds the request only in its outgoing form (it is built, moved and boxed once per request).
    let prepared = prepare(session, route, upstream, req, plugins, used);
    async move {
        let (ctx, conn, started) = (session.worker, session.conn, session.started);
        let (first, mut outgoing, endpoints) = prepared?;
        let mut timer = conn.request_timer(started + route.timeout);
        let answer = {
            let mut attempts = pin!(attempts(
                session,
                route,
                upstream,
                &endpoints,
                first,
                &mut outgoing,
                used
            ));
            poll_fn(|cx| match attempts.as_mut().poll(cx) {
                Poll::Ready(result) => Poll::Ready(Some(result)),
                Poll::Pending => timer.as_mut().poll(cx).map(|()| None),
            })
            .await
        };
        conn.keep_timer(timer);
        let (answer, in_flight) = match answer {
            Some(result) => result?,
            None => {
                upstream.metrics.timeout(ctx.index);
                return Err(ProxyError::UpstreamTimeout);
            }
        };
        let response = match answer {
            Answer::Response(response) => response,
            Answer::Upgraded(upgraded) => {
                let (mut parts, upstream_io) = *upgraded;
                // The HTTP/1.1 connection joins its side to this one once it has written the 101.
                *conn.pending_upgrade.borrow_mut() = Some(upstream_io);
                remove_hop_by_hop(&mut parts.headers, true);
                return Ok(Outcome {
                    response: Response::from_parts(parts, ResponseBody::full(Bytes::new())),
                    in_flight: Some(in_flight),
                });
            }
        };
        let (mut parts, body) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers, false);
        // The client's connection has its own version; an HTTP/1.0 upstream must not turn it into HTTP/1.0.
        parts.version = http::Version::HTTP_11;
        Ok(Outcome {
            response: Response::from_parts(parts, body),
            in_flight: Some(in_flight),
        })
    }
}

/// The latency the `ewma` balancer counts for an attempt that got no answer (1 s).
const FAILURE_LATENCY_NS: u64 = 1_000_000_000;

/// A forwarded or directly answered response with what the completion needs to know.
pub struct Outcome {
    /// The response to send.
    pub response: Response<ResponseBody>,
    /// Kept until the response ends so `least_request` sees the request as in flight.
    pub in_flight: Option<floodgate_upstream::InFlightGuard>,
}

/// The target an attempt goes to.
struct Picked {
    index: usize,
    in_flight: InFlightGuard,
}

/// Sends `outgoing` to `first`, and again to another target for as long as the route's retry
/// policy, its budget and the request allow; every attempt's outcome goes to the target's health.
/// The upstream's answer, or the error of the last attempt.
async fn attempts(
    session: &Session<'_>,
    route: &RouteRuntime,
    upstream: &UpstreamRuntime,
    endpoints: &Endpoints,
    first: Picked,
    outgoing: &mut Outgoing<'_>,
    used: &mut UpstreamUsed,
) -> Result<(Answer, InFlightGuard), ProxyError> {
    let (ctx, started) = (session.worker, session.started);
    let policy = route
        .retries
        .as_ref()
        .filter(|p| p.attempts > 1 && p.allows_method(&outgoing.parts.method));
    let _active = policy.map(|_| upstream.retry_budget.active(ctx.index));
    outgoing.may_retry = policy.is_some();
    // The breaker's place for this request, held until its response head (its body streams on
    // without it, as in Envoy, whose limit counts requests waiting for their answer).
    let _admitted = match &upstream.breaker {
        None => None,
        // The request's arrival is "now" enough for the breaker's clock, and costs no reading.
        Some(breaker) => match breaker.admit(ctx.index, Millis::of(started)) {
            Ok(permit) => Some(permit),
            Err(reason) => {
                upstream.metrics.breaker_rejected(ctx.index, reason.index());
                return Err(ProxyError::CircuitOpen(reason));
            }
        },
    };
    // A body short enough is read whole first, so that any attempt can send it.
    if let Some(policy) = policy.filter(|p| outgoing.had_body && p.buffer_body > 0) {
        outgoing.replay = Replay::read(&mut outgoing.body, policy.buffer_body)
            .await
            .map_err(|e| body_error(&e))?
            .map(Box::new);
    }
    let mut picked = first;
    let mut attempt = 1;
    used.attempts = 1;
    // The retry in flight, counted against the budget until the next attempt ends.
    let mut retrying: Option<(retry::InFlight<'_>, Option<Permit<'_>>)> = None;
    loop {
        let target = &endpoints.targets[picked.index];
        let sent_at = if attempt == 1 {
            started
        } else {
            Instant::now()
        };
        if let Some(trace) = used.trace.as_deref_mut().filter(|_| route.traced) {
            outgoing.trace = Some(TraceHead {
                context: trace.attempt_started(sent_at),
                continued: trace.continued(),
            });
        }
        let result = match policy.and_then(|p| p.per_try_timeout) {
            None => exchange(ctx, upstream, target, outgoing, sent_at).await,
            Some(limit) => {
                match tokio::time::timeout(
                    limit,
                    exchange(ctx, upstream, target, outgoing, sent_at),
                )
                .await
                {
                    Ok(result) => result,
                    Err(_) => {
                        // The abandoned attempt may have taken some of the body.
                        outgoing.spent |= !outgoing.resendable();
                        Err(ExchangeError::Upstream(AttemptFailure::bare(
                            FailureClass::Timeout,
                        )))
                    }
                }
            }
        };
        let tried = match &result {
            Ok(answer) => Tried::Status(answer.status(), answer_retry_after(answer)),
            Err(ExchangeError::Upstream(failure)) => Tried::Failed(failure.class),
            // The gateway's own answer: nothing to report, nothing to retry.
            Err(ExchangeError::Local(error)) => return Err(*error),
        };
        report_attempt(
            upstream,
            endpoints,
            picked.index,
            &tried,
            result.as_ref().ok(),
            sent_at,
        );
        if let Some(trace) = used.trace.as_deref_mut().filter(|_| route.traced) {
            let outcome = match &tried {
                Tried::Status(status, _) => AttemptOutcome::Status(status.as_u16()),
                Tried::Failed(class) => AttemptOutcome::Failed(class.as_str()),
            };
            trace.attempt_ended(target.socket_addr, outcome);
        }
        let wait = policy.filter(|p| attempt < p.attempts).and_then(|p| {
            let replayable = !outgoing.spent
                && match &tried {
                    Tried::Failed(class) => class.before_request() || outgoing.resendable(),
                    Tried::Status(..) => outgoing.resendable(),
                };
            if !replayable {
                return None;
            }
            p.wait_before_retry(&tried, attempt)
        });
        let (Some(policy), Some(wait)) = (policy, wait) else {
            return finish(upstream, result, picked.in_flight);
        };
        // This attempt is over: its place in the budget is given back before asking for the next.
        drop(retrying.take());
        let Some(next) = upstream.retry_budget.try_retry(ctx.index, policy) else {
            upstream.metrics.retry_budget_exhausted(ctx.index);
            return finish(upstream, result, picked.in_flight);
        };
        let breaker_retry = match &upstream.breaker {
            None => None,
            Some(breaker) => match breaker.retry(ctx.index) {
                Some(permit) => Some(permit),
                None => {
                    upstream
                        .metrics
                        .breaker_rejected(ctx.index, BreakerReason::MaxRetries.index());
                    return finish(upstream, result, picked.in_flight);
                }
            },
        };
        retrying.replace((next, breaker_retry));
        upstream.metrics.retry(ctx.index);
        if let Err(ExchangeError::Upstream(failure)) = &result {
            tracing::debug!(upstream = %upstream.id, target = %target.address, attempt, %failure, "retrying");
        }
        // The response being retried is dropped unread: its connection is closed, not pooled.
        drop(result);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let previous = picked.index;
        picked = pick(
            ctx,
            upstream,
            endpoints,
            &outgoing.parts.headers,
            outgoing.path.path(),
            Some(previous),
        )?;
        let target = &endpoints.targets[picked.index];
        used.went_to(&target.address);
        if let Some(replay) = &outgoing.replay {
            outgoing.body = replay.body();
        }
        if !route.preserve_host && outgoing.host == endpoints.targets[previous].authority {
            outgoing.host = target.authority.clone();
        }
        attempt += 1;
        used.attempts = attempt;
    }
}

/// Tells whoever learns from attempts how one to target `index`, sent at `sent_at`, went: the
/// balancer (latency, for `ewma`), the circuit breaker, the passive health check, and the target's
/// load report in its `answer`. The clock is read once, and only when one of them listens.
fn report_attempt(
    upstream: &UpstreamRuntime,
    endpoints: &Endpoints,
    index: usize,
    tried: &Tried,
    answer: Option<&Answer>,
    sent_at: Instant,
) {
    let latency = endpoints.balancer.observes_latency();
    let passive = endpoints.health.is_passive();
    let reports = endpoints.health.reads_load_reports();
    if !latency && !passive && !reports && upstream.breaker.is_none() {
        return;
    }
    // One clock reading, on the health clock, serves them all.
    let ended = Nanos::now();
    if latency {
        // A failure counts as a slow answer, so a target that refuses at once does not look fast.
        let rtt = ended.0.saturating_sub(Nanos::of(sent_at).0);
        let rtt = match tried {
            Tried::Status(..) => rtt,
            Tried::Failed(_) => rtt.max(FAILURE_LATENCY_NS),
        };
        endpoints.balancer.observe(index, rtt, ended);
    }
    if let Some(breaker) = &upstream.breaker {
        let failed = match tried {
            Tried::Status(status, _) => status.is_server_error(),
            Tried::Failed(_) => true,
        };
        breaker.record(failed, ended.millis());
    }
    if passive {
        let reported = match tried {
            Tried::Status(status, _) => AttemptResult::Status(status.as_u16()),
            Tried::Failed(_) => AttemptResult::GatewayFailure,
        };
        endpoints.health.report(index, reported, ended.millis());
    }
    if let (true, Some(Answer::Response(response))) = (reports, answer) {
        if let Some(utilization) = upstream_field(response, floodgate_load_report::FIELD)
            .and_then(floodgate_load_report::utilization)
        {
            endpoints.health.load_report(index, utilization, ended);
        }
    }
}

/// A field of the upstream's response: from the map (HTTP/2, or set by the gateway), else from the
/// upstream's raw HTTP/1.1 fields, which travel with the body.
fn upstream_field<'r>(response: &'r Response<ResponseBody>, name: &'r str) -> Option<&'r [u8]> {
    match response.headers().get(name) {
        Some(value) => Some(value.as_bytes()),
        None => response.body().fields().upstream.values(name).next(),
    }
}

/// The last attempt's result as the forwarding's.
fn finish(
    upstream: &UpstreamRuntime,
    result: Result<Answer, ExchangeError>,
    in_flight: InFlightGuard,
) -> Result<(Answer, InFlightGuard), ProxyError> {
    match result {
        Ok(answer) => Ok((answer, in_flight)),
        Err(ExchangeError::Local(error)) => Err(error),
        Err(ExchangeError::Upstream(failure)) => {
            tracing::debug!(upstream = %upstream.id, %failure, "upstream attempt failed");
            Err(ProxyError::Upstream(failure.class))
        }
    }
}

/// The wait a `503` or `429` asks for in `Retry-After`.
fn answer_retry_after(answer: &Answer) -> Option<std::time::Duration> {
    let Answer::Response(response) = answer else {
        return None;
    };
    let status = response.status();
    // Only those two are read: the field is not looked up for every other answer.
    if status.as_u16() != 503 && status.as_u16() != 429 {
        return None;
    }
    retry_after(
        status,
        upstream_field(response, header::RETRY_AFTER.as_str()),
    )
}

/// Picks a target among those with room for a connection and in service, other than `avoid` when
/// another one may be picked.
fn pick(
    ctx: &WorkerCtx,
    upstream: &UpstreamRuntime,
    endpoints: &Endpoints,
    headers: &HeaderMap,
    path: &str,
    avoid: Option<usize>,
) -> Result<Picked, ProxyError> {
    let context = PickContext {
        worker: ctx.index,
        headers,
        path,
        client_ip: None,
    };
    let index = pick_index(&ctx.pools, upstream, endpoints, &context, avoid)?;
    Ok(Picked {
        index,
        in_flight: endpoints.balancer.start(index),
    })
}

/// The balancer's pick among the targets with room for a connection and in service, other than
/// `avoid` when another may be picked. While targets ramp up (`slow_start`) or report their load
/// (`load_reports`), a pick stands with the probability of its share; when that turns every candidate
/// down, the pick is made again without it, so neither ever refuses a request.
fn pick_index(
    pools: &WorkerPools,
    upstream: &UpstreamRuntime,
    endpoints: &Endpoints,
    context: &PickContext<'_>,
    avoid: Option<usize>,
) -> Result<usize, ProxyError> {
    let health = &endpoints.health;
    let eligible = health.eligible();
    let admission = health.admission();
    let usable =
        |i: usize| {
            endpoints.targets.get(i).is_some_and(|t| {
                pools.has_capacity(&t.pool_key, upstream.max_connections_per_target)
            }) && (matches!(eligible, Eligible::All) || health.allows(&eligible, i))
        };
    let ramped = |i: usize| {
        usable(i)
            && admission
                .as_ref()
                .is_none_or(|admission| health.admits(i, admission))
    };
    let balancer = &endpoints.balancer;
    avoid
        .and_then(|avoid| balancer.pick(context, |i| i != avoid && ramped(i)))
        .or_else(|| balancer.pick(context, ramped))
        .or_else(|| admission.and_then(|_| balancer.pick(context, usable)))
        .ok_or(ProxyError::NoTarget)
}

/// Picks the first target and shapes the request for it: hop-by-hop headers out, the gateway's
/// forwarding headers beside the map, `Host`, the body wrapped in its size limit. Inlined, so what it
/// returns is built where `forward` keeps it rather than copied there.
#[inline(always)]
fn prepare<'a>(
    session: &Session<'a>,
    route: &RouteRuntime,
    upstream: &'a UpstreamRuntime,
    req: Request<ClientBody>,
    plugins: Option<&RequestCtx>,
    used: &mut UpstreamUsed,
) -> Result<(Picked, Outgoing<'a>, Current<'a>), ProxyError> {
    let (ctx, conn, request_id) = (session.worker, session.conn, session.client.request_id);
    // One load for the whole forwarding, returned with the first pick: every attempt picks among the
    // same targets, whose indexes line up, whatever answer a name gets meanwhile. A borrow for an
    // upstream of addresses, and for one with names a guard rather than a clone of the `Arc`: no
    // count shared with the other workers is written.
    let endpoints = upstream.endpoints.load();
    let pick_context = PickContext {
        worker: ctx.index,
        headers: req.headers(),
        path: req.uri().path(),
        client_ip: Some(conn.client.ip()),
    };
    let index = pick_index(&ctx.pools, upstream, &endpoints, &pick_context, None)?;
    let target = endpoints.targets.get(index).ok_or(ProxyError::NoTarget)?;
    used.went_to(&target.address);
    let in_flight = endpoints.balancer.start(index);

    // An upgrade is tunnelled only for a protocol the route allows, and only when the request has no
    // body: the upgraded connection carries the new protocol straight after the head, so a body would
    // be neither forwarded nor skippable. Any other upgrade request is forwarded as a plain one, its
    // `Upgrade` and body going on as read (RFC 9110 §7.8 lets a server ignore `Upgrade`).
    let names = scan(req.headers());
    let upgrade = names.upgrade()
        && is_upgrade(&req)
        && req.body().is_end_stream()
        && upgrade_allowed(req.headers(), &route.upgrades);
    let host_in = client_host(&req);
    let (mut parts, body) = req.into_parts();
    let (prior_forwarded_for, expect) = (names.forwarded_for, names.expect);
    clean_request_fields(&mut parts.headers, names, upgrade);
    // The server answers `Expect: 100-continue` when the body is first read; the upstream gets the body
    // straight away and must not wait for a 100 of its own.
    if expect {
        parts.headers.remove(header::EXPECT);
    }
    let forwarded = Forwarded {
        client: &conn.client_ip_value,
        // Scanned after the plugins' `request` phase; the `upstream_request` phase cannot set one (the
        // `headers` plugin refuses the fields the gateway writes).
        prior: prior_forwarded_for,
        tls: conn.tls,
        host: host_in.clone(),
        request_id,
    };
    let mut host = match (route.preserve_host, host_in) {
        (true, Some(host)) => host,
        _ => target.authority.clone(),
    };
    let body = if upgrade {
        RequestBody::empty()
    } else {
        RequestBody::new(body, route.max_body_bytes)
    };
    let mut path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    if route.plugins.is_some() {
        upstream_request_phase(
            route,
            plugins,
            &mut UpstreamRequest {
                method: &parts.method,
                headers: &mut parts.headers,
                path: &mut path,
                host: &mut host,
            },
        );
    }
    let outgoing = Outgoing {
        parts,
        had_body: !body.is_end_stream(),
        body,
        upgrade,
        host,
        path,
        forwarded: Some(forwarded),
        trace: None,
        spent: false,
        may_retry: false,
        replay: None,
    };
    Ok((Picked { index, in_flight }, outgoing, endpoints))
}

/// A request on its way to the upstream, the same whichever connection carries it, and kept between
/// attempts.
struct Outgoing<'a> {
    parts: http::request::Parts,
    body: RequestBody,
    /// Whether the request came with a body: one that may have started to leave is never sent again.
    had_body: bool,
    upgrade: bool,
    /// `Host` (HTTP/1.1) or `:authority` (HTTP/2) for the upstream.
    host: HeaderValue,
    path: PathAndQuery,
    /// The gateway's forwarding headers, until they are written into the head or put in the map.
    forwarded: Option<Forwarded<'a>>,
    /// The trace context of the attempt under way, when the request is traced.
    trace: Option<TraceHead>,
    /// An attempt kept the request (an HTTP/2 connection that did not hand it back): it cannot go
    /// again.
    spent: bool,
    /// The route may try the request again: an HTTP/2 attempt keeps a copy of a resendable head.
    may_retry: bool,
    /// The body, read whole to be sent again (`retries.buffer_body`). Boxed: few requests have one.
    replay: Option<Box<Replay>>,
}

impl Outgoing<'_> {
    /// Whether the request can go again after it has left: it has no body, or a buffered one.
    fn resendable(&self) -> bool {
        !self.had_body || self.replay.is_some()
    }

    /// The request's head, leaving an empty one in its place (see `send_h2`).
    fn take_parts(&mut self) -> http::request::Parts {
        let (empty, ()) = Request::new(()).into_parts();
        std::mem::replace(&mut self.parts, empty)
    }
}
