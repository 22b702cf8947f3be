//! [`Chain`]: a route's plugins in priority order, and the phases run through them.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderValue, StatusCode};

use crate::answer::Answer;
use crate::consumer::Consumer;
use crate::context::{Rejection, RequestCtx};
use crate::heads::{RequestHead, ResponseHead, UpstreamRequest};
use crate::params::{ParamPatterns, PathParams};
use crate::policy::Flow;
use crate::registry::Plugin;

/// A route's plugins (global ones included), sorted by priority, built once per snapshot.
pub struct Chain {
    route: Arc<str>,
    plugins: Box<[Arc<Plugin>]>,
    params: ParamPatterns,
    /// Every consumer's own plugins, sorted by priority, by the consumer's index.
    consumer_plugins: ConsumerPlugins,
}

/// Every consumer's own plugins, by consumer index: shared by all the chains of a snapshot.
pub type ConsumerPlugins = Arc<[Box<[Arc<Plugin>]>]>;

impl Chain {
    /// The chain of route `route` with these plugins (any order) and path patterns, joined on a
    /// request by the plugins of the consumer it identifies.
    pub fn new<'a>(
        route: Arc<str>,
        mut plugins: Vec<Arc<Plugin>>,
        paths: impl IntoIterator<Item = &'a str>,
        consumer_plugins: ConsumerPlugins,
    ) -> Self {
        plugins.sort_by_key(|p| std::cmp::Reverse(p.priority()));
        Self {
            route,
            plugins: plugins.into_boxed_slice(),
            params: ParamPatterns::new(paths),
            consumer_plugins,
        }
    }

    /// The own plugins of `consumer` (none when it has none).
    fn own_plugins(&self, consumer: Option<&Consumer>) -> &[Arc<Plugin>] {
        consumer
            .and_then(|c| self.consumer_plugins.get(c.index))
            .map_or(&[], |p| &p[..])
    }

    /// The context of a request on this chain's route.
    pub fn start(
        &self,
        client_ip: IpAddr,
        request_id: HeaderValue,
        worker: usize,
        tls: bool,
        path: &str,
    ) -> Box<RequestCtx> {
        Box::new(RequestCtx {
            client_ip,
            route: self.route.clone(),
            request_id,
            worker,
            tls,
            consumer: None,
            params: if self.params.is_empty() {
                PathParams::default()
            } else {
                self.params.extract(path)
            },
            response_headers: Vec::new(),
            rejection: None,
            held: Vec::new(),
            delay: None,
            upstream: None,
            mirror: None,
        })
    }

    /// The `request` phase: each plugin in turn, until one answers.
    pub fn request(&self, req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Option<Answer> {
        let mut cursor = Cursor::default();
        loop {
            // The consumer is read again at each step: an authentication plugin may just have named
            // it. Only a consumer with plugins of its own changes the order, and only then is it
            // held (a reference count) across the step.
            let answer = match ctx
                .consumer
                .as_ref()
                .filter(|c| !self.own_plugins(Some(c)).is_empty())
            {
                Some(consumer) => {
                    let consumer = consumer.clone();
                    let plugin = self.next(Some(&consumer), &mut cursor)?;
                    Self::ask(plugin, req, ctx)
                }
                None => Self::ask(self.next(None, &mut cursor)?, req, ctx),
            };
            if answer.is_some() {
                return answer;
            }
        }
    }

    /// One plugin's `request` phase; an answer is recorded as the request's rejection.
    fn ask(plugin: &Plugin, req: &mut RequestHead<'_>, ctx: &mut RequestCtx) -> Option<Answer> {
        match plugin.request(req, ctx) {
            Flow::Continue => None,
            Flow::Respond(answer) => {
                ctx.rejection = Some(Rejection {
                    plugin: plugin.name(),
                    reason: answer.reason,
                    credentials_refused: answer.credentials_refused,
                });
                Some(answer)
            }
        }
    }

    /// The `upstream_request` phase.
    pub fn upstream_request(&self, req: &mut UpstreamRequest<'_>, ctx: &RequestCtx) {
        let mut cursor = Cursor::default();
        while let Some(plugin) = self.next(ctx.consumer.as_deref(), &mut cursor) {
            plugin.upstream_request(req, ctx);
        }
    }

    /// The `response` phase: the fields the `request` phase asked for, then each plugin.
    pub fn response(&self, resp: &mut ResponseHead<'_>, ctx: &mut RequestCtx) {
        // Moved, not cloned: they are used once, and a clone of a value made from bytes allocates.
        resp.headers.set_all(&mut ctx.response_headers);
        let ctx = &*ctx;
        let mut cursor = Cursor::default();
        while let Some(plugin) = self.next(ctx.consumer.as_deref(), &mut cursor) {
            plugin.response(resp, ctx);
        }
    }

    /// Runs the `log` phase of every plugin that took part, then releases what the request held.
    pub fn finish(&self, mut ctx: Box<RequestCtx>, status: StatusCode) {
        self.log(&mut ctx, status);
        ctx.held.clear();
    }

    /// The `log` phase.
    fn log(&self, ctx: &mut RequestCtx, status: StatusCode) {
        let consumer = ctx.consumer.clone();
        let mut cursor = Cursor::default();
        while let Some(plugin) = self.next(consumer.as_deref(), &mut cursor) {
            plugin.log(ctx, status);
        }
    }

    /// The next plugin: the route's and the consumer's merged by priority, a consumer's plugin
    /// replacing the route's of the same name. No allocation: two positions in two sorted lists.
    fn next<'c>(
        &'c self,
        consumer: Option<&'c Consumer>,
        cursor: &mut Cursor,
    ) -> Option<&'c Plugin> {
        let extra = self.own_plugins(consumer);
        // Most requests have no consumer plugins: then the route's list is the order, as it stands.
        if extra.is_empty() {
            let plugin = self.plugins.get(cursor.route)?;
            cursor.route += 1;
            return Some(plugin);
        }
        loop {
            let route = self.plugins.get(cursor.route);
            let own = extra.get(cursor.consumer);
            match (route, own) {
                (None, None) => return None,
                (Some(r), Some(c)) if c.priority() > r.priority() => {
                    cursor.consumer += 1;
                    return Some(c);
                }
                (Some(r), _) => {
                    cursor.route += 1;
                    if extra.iter().any(|c| c.name() == r.name()) {
                        continue;
                    }
                    return Some(r);
                }
                (None, Some(c)) => {
                    cursor.consumer += 1;
                    return Some(c);
                }
            }
        }
    }
}

#[derive(Default)]
struct Cursor {
    route: usize,
    consumer: usize,
}
