//! Copies of requests for a shadow upstream (`proxy-mirror`): each sent from a task of its own on
//! the worker, its answer read and dropped, so the real request never waits on the mirror.

use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use floodgate_plugins::MirrorTo;
use http::uri::PathAndQuery;
use http::{header, Request};
use http_body::Body as _;
use http_body_util::BodyExt;

use super::exchange::{exchange, Answer};
use super::{pick, Outgoing};
use crate::headers::{clean_request_fields, client_host, scan, Forwarded};
use crate::request_body::{ClientBody, RequestBody};
use crate::request_state::Session;
use crate::snapshot::{Endpoints, Snapshot, UpstreamRuntime};
use crate::worker_ctx::WorkerCtx;

/// What became of a copy, as `floodgate_mirror_requests_total{result}` counts it.
#[derive(Debug, Clone, Copy)]
pub enum MirrorResult {
    /// The mirror answered (whatever the status).
    Answered = 0,
    /// The mirror failed or did not answer in time.
    Failed = 1,
    /// Not sent: the worker had `max_in_flight` copies waiting already, or the request has a body.
    Dropped = 2,
}

/// Sends a copy of `req` (its head: a body streams once, to the real upstream, so a request with one
/// is not copied) to the mirror `to` names, from a task of its own, bounded by `timeout`.
pub fn send_copy(
    session: &Session<'_>,
    snapshot: &Snapshot,
    to: &MirrorTo,
    req: &Request<ClientBody>,
    timeout: Duration,
) {
    let (ctx, conn, request_id) = (session.worker, session.conn, session.client.request_id);
    let Some(upstream) = snapshot.upstream(&to.upstream).cloned() else {
        return;
    };
    let worker = ctx.index;
    let in_flight = upstream.mirror_slots.get(worker);
    if !req.body().is_end_stream() || in_flight.load(Relaxed) >= to.max_in_flight {
        upstream
            .metrics
            .mirror(worker, MirrorResult::Dropped as usize);
        return;
    }
    // The copy's task keeps the set it picked from, so its index still means the same target.
    let endpoints = upstream.endpoints.load_full();
    let Ok(picked) = pick(
        ctx,
        &upstream,
        &endpoints,
        req.headers(),
        req.uri().path(),
        None,
    ) else {
        upstream
            .metrics
            .mirror(worker, MirrorResult::Dropped as usize);
        return;
    };
    in_flight.fetch_add(1, Relaxed);
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = req.method().clone();
    parts.uri = req.uri().clone();
    parts.headers = req.headers().clone();
    let names = scan(&parts.headers);
    let prior = names.forwarded_for;
    clean_request_fields(&mut parts.headers, names, false);
    parts.headers.remove(header::EXPECT);
    // The copy carries the gateway's forwarding fields as the real request does, so a shadow
    // service reads the same client address, never one the client wrote itself.
    let host_in = client_host(req);
    Forwarded {
        client: &conn.client_ip_value,
        prior,
        tls: conn.tls,
        host: host_in.clone(),
        request_id,
    }
    .apply(&mut parts.headers);
    let host = host_in.unwrap_or_else(|| endpoints.targets[picked.index].authority.clone());
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let outgoing = Outgoing {
        parts,
        body: RequestBody::empty(),
        had_body: false,
        upgrade: false,
        host,
        path,
        forwarded: None,
        trace: None,
        spent: false,
        may_retry: false,
        replay: None,
    };
    let ctx = ctx.clone();
    tokio::task::spawn_local(copy(
        ctx,
        upstream,
        endpoints,
        picked.index,
        outgoing,
        timeout,
    ));
}

/// Sends one copy and reads its answer to the end (so its connection goes back to the pool).
async fn copy(
    ctx: Rc<WorkerCtx>,
    upstream: Arc<UpstreamRuntime>,
    endpoints: Arc<Endpoints>,
    index: usize,
    mut outgoing: Outgoing<'static>,
    timeout: Duration,
) {
    let worker = ctx.index;
    let sent = async {
        let target = &endpoints.targets[index];
        match exchange(&ctx, &upstream, target, &mut outgoing, Instant::now()).await {
            Ok(Answer::Response(response)) => {
                let _ = response.into_body().collect().await;
                true
            }
            _ => false,
        }
    };
    let result = match tokio::time::timeout(timeout, sent).await {
        Ok(true) => MirrorResult::Answered,
        _ => MirrorResult::Failed,
    };
    upstream.metrics.mirror(worker, result as usize);
    upstream.mirror_slots.get(worker).fetch_sub(1, Relaxed);
}
