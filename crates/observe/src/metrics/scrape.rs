//! The scrape: [`Metrics::render`] sums every worker's slots and writes the exposition.

use std::sync::Arc;

use super::exposition::{Kind, Seconds, TextWriter};
use super::histogram::write_histogram;
use super::registry::Metrics;
use super::route::{RouteSnapshot, METHOD_LABELS, STATUS_CLASS_LABELS};
use super::timeouts::TimeoutKind;
use super::upstream::UpstreamMetrics;

const REQUESTS: &str = "floodgate_requests_total";
const DURATION: &str = "floodgate_request_duration_seconds";
const RESPONSE_BYTES: &str = "floodgate_response_body_bytes_total";
const CONNECT_ERRORS: &str = "floodgate_upstream_connect_errors_total";
const TIMEOUTS: &str = "floodgate_upstream_timeouts_total";
const RETRIES: &str = "floodgate_upstream_retries_total";
const RETRY_BUDGET_EXHAUSTED: &str = "floodgate_upstream_retry_budget_exhausted_total";
const BREAKER_REJECTIONS: &str = "floodgate_upstream_breaker_rejections_total";
const MIRROR: &str = "floodgate_mirror_requests_total";
const DNS_RESOLUTIONS: &str = "floodgate_dns_resolutions_total";
const CONNECTIONS: &str = "floodgate_downstream_connections_open";
const CONNECTION_TIMEOUTS: &str = "floodgate_connection_timeouts_total";
const RELOADS: &str = "floodgate_config_reloads_total";
const CONFIG_APPLY: &str = "floodgate_config_apply_duration_seconds";
const CONFIG_AGE: &str = "floodgate_config_age_seconds";
const LAST_RELOAD: &str = "floodgate_config_last_reload_success_timestamp_seconds";

impl Metrics {
    /// Renders every metric in the Prometheus text exposition format 0.0.4 (see [`Metrics::CONTENT_TYPE`]),
    /// each family with its `# HELP` and `# TYPE` lines, series sorted by label for stable output.
    ///
    /// `floodgate_requests_total` lists only method/status-class pairs that were seen, and the duration
    /// histogram only routes that recorded a request: ten methods times five classes would otherwise add
    /// fifty zero lines, and a histogram seventeen, for every route. Upstream counters are listed for every
    /// upstream, zero included, one line each. The config age and timestamp have no sample before the
    /// first [`Metrics::set_config_loaded_now`].
    pub fn render(&self) -> String {
        let routes: Vec<(Arc<str>, RouteSnapshot)> = self
            .routes_by_id()
            .into_iter()
            .map(|(id, m)| (id, m.snapshot()))
            .collect();
        let mut w = TextWriter::default();
        render_requests(&mut w, &routes);
        render_durations(&mut w, &routes);
        let upstreams = self.upstreams_by_id();
        render_upstreams(&mut w, &upstreams);
        super::upstream_timing::render_upstream_timing(&mut w, &upstreams);
        super::targets::render_targets(&mut w, &self.targets());
        super::breaker::render_breakers(&mut w, &self.breakers_by_id());
        let by_route = self.routes_by_id();
        let rejections: Vec<_> = by_route
            .iter()
            .map(|(id, m)| (id.clone(), &m.plugin_rejections))
            .collect();
        super::plugins::render_rejections(&mut w, &rejections);
        self.plugins.render(&mut w);
        self.render_process(&mut w);
        super::tls::render_tls(&mut w, &self.tls_listeners());
        self.config_source.render(&mut w);
        self.access_log.render(&mut w);
        self.tracing.render(&mut w);
        super::process_stats::ProcessStats::read().render(&mut w);
        w.finish()
    }

    fn render_process(&self, w: &mut TextWriter) {
        w.family(
            CONNECTIONS,
            "Downstream (client) connections currently open.",
            Kind::Gauge,
        );
        w.sample(CONNECTIONS, &[], self.open_connections());
        self.overload.render(w);

        w.family(
            CONNECTION_TIMEOUTS,
            "Connections closed because a peer missed a deadline, by kind.",
            Kind::Counter,
        );
        let upstream_reads: u64 = self
            .upstreams_by_id()
            .iter()
            .map(|(_, upstream)| upstream.read_timeouts())
            .fold(0, u64::wrapping_add);
        for (kind, count) in self.timeouts.totals() {
            let count = match kind {
                TimeoutKind::UpstreamRead => count.wrapping_add(upstream_reads),
                _ => count,
            };
            w.sample(CONNECTION_TIMEOUTS, &[("kind", kind.label())], count);
        }

        let (success, failure) = self.reloads();
        w.family(
            RELOADS,
            "Configuration reload attempts, by result.",
            Kind::Counter,
        );
        w.sample(RELOADS, &[("result", "failure")], failure);
        w.sample(RELOADS, &[("result", "success")], success);
        w.family(
            CONFIG_APPLY,
            "Time to apply a configuration (from a file, the admin API or etcd) once it was validated.",
            Kind::Histogram,
        );
        write_histogram(w, CONFIG_APPLY, &[], &self.config_apply());

        let loaded = self.config_loaded();
        w.family(
            CONFIG_AGE,
            "Seconds since the configuration in service was loaded.",
            Kind::Gauge,
        );
        if let Some(loaded) = &loaded {
            w.sample(
                CONFIG_AGE,
                &[],
                Seconds {
                    micros: loaded.age_micros,
                },
            );
        }
        w.family(
            LAST_RELOAD,
            "Unix time at which the configuration in service was loaded.",
            Kind::Gauge,
        );
        if let Some(loaded) = &loaded {
            w.sample(
                LAST_RELOAD,
                &[],
                Seconds {
                    micros: loaded.unix_micros,
                },
            );
        }
    }
}

fn render_requests(w: &mut TextWriter, routes: &[(Arc<str>, RouteSnapshot)]) {
    w.family(
        REQUESTS,
        "Requests answered, by route, method and status class.",
        Kind::Counter,
    );
    for (route, snap) in routes {
        for (method, counts) in METHOD_LABELS.iter().zip(&snap.requests) {
            for (class, count) in STATUS_CLASS_LABELS.iter().zip(counts) {
                if *count > 0 {
                    let labels = [
                        ("route", &**route),
                        ("method", method),
                        ("status_class", class),
                    ];
                    w.sample(REQUESTS, &labels, count);
                }
            }
        }
    }
}

fn render_durations(w: &mut TextWriter, routes: &[(Arc<str>, RouteSnapshot)]) {
    w.family(
        DURATION,
        "Time taken to answer a request, by route.",
        Kind::Histogram,
    );
    for (route, snap) in routes {
        write_histogram(w, DURATION, &[("route", route)], &snap.duration);
    }
    w.family(
        RESPONSE_BYTES,
        "Response body bytes sent to clients, by route.",
        Kind::Counter,
    );
    for (route, snap) in routes {
        if snap.duration.count() > 0 {
            w.sample(
                RESPONSE_BYTES,
                &[("route", route)],
                snap.response_body_bytes,
            );
        }
    }
}

fn render_upstreams(w: &mut TextWriter, upstreams: &[(Arc<str>, Arc<UpstreamMetrics>)]) {
    let totals: Vec<(&str, (u64, u64))> = upstreams
        .iter()
        .map(|(id, m)| (&**id, m.totals()))
        .collect();
    w.family(
        CONNECT_ERRORS,
        "Failed connection attempts to an upstream's targets.",
        Kind::Counter,
    );
    for (id, (errors, _)) in &totals {
        w.sample(CONNECT_ERRORS, &[("upstream", id)], errors);
    }
    w.family(TIMEOUTS, "Upstream requests that timed out.", Kind::Counter);
    for (id, (_, timeouts)) in &totals {
        w.sample(TIMEOUTS, &[("upstream", id)], timeouts);
    }
    let retries: Vec<(&str, (u64, u64))> = upstreams
        .iter()
        .map(|(id, m)| (&**id, m.retry_totals()))
        .collect();
    w.family(
        RETRIES,
        "Requests to an upstream tried again under a route's retry policy.",
        Kind::Counter,
    );
    for (id, (retried, _)) in &retries {
        w.sample(RETRIES, &[("upstream", id)], retried);
    }
    w.family(
        RETRY_BUDGET_EXHAUSTED,
        "Retries the retry budget did not allow.",
        Kind::Counter,
    );
    for (id, (_, refused)) in &retries {
        w.sample(RETRY_BUDGET_EXHAUSTED, &[("upstream", id)], refused);
    }
    w.family(
        BREAKER_REJECTIONS,
        "Requests an upstream's circuit breaker answered 503 at once, by reason. Only pairs that occurred are listed.",
        Kind::Counter,
    );
    for (id, metrics) in upstreams {
        let counts = metrics.breaker_rejections();
        for (reason, count) in super::upstream::BREAKER_REASONS.iter().zip(counts) {
            if count > 0 {
                w.sample(
                    BREAKER_REJECTIONS,
                    &[("upstream", id), ("reason", reason)],
                    count,
                );
            }
        }
    }
    w.family(
        MIRROR,
        "Copies of requests sent to an upstream as a mirror (proxy-mirror), by result. Only pairs that occurred are listed.",
        Kind::Counter,
    );
    for (id, metrics) in upstreams {
        let counts = metrics.mirror_totals();
        for (result, count) in super::upstream::MIRROR_RESULTS.iter().zip(counts) {
            if count > 0 {
                w.sample(MIRROR, &[("upstream", id), ("result", result)], count);
            }
        }
    }
    w.family(
        DNS_RESOLUTIONS,
        "Resolutions of an upstream's target names, by result; on a failure the last answer stays in use. Only pairs that occurred are listed.",
        Kind::Counter,
    );
    for (id, metrics) in upstreams {
        let counts = metrics.dns_totals();
        for (result, count) in super::upstream::DNS_RESULTS.iter().zip(counts) {
            if count > 0 {
                w.sample(
                    DNS_RESOLUTIONS,
                    &[("upstream", id), ("result", result)],
                    count,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, StatusCode};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    fn lines(text: &str) -> Vec<&str> {
        text.lines().collect()
    }

    fn assert_has(text: &str, line: &str) {
        assert!(lines(text).contains(&line), "missing {line:?} in:\n{text}");
    }

    fn sample_value(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn requests_from_two_workers_are_summed() {
        let metrics = Metrics::new(2);
        let users = metrics.route("users");
        users.record(
            0,
            (&Method::GET, StatusCode::OK),
            Duration::from_millis(2),
            0,
        );
        users.record(
            1,
            (&Method::GET, StatusCode::NO_CONTENT),
            Duration::from_millis(30),
            0,
        );
        users.record(
            1,
            (&Method::POST, StatusCode::BAD_GATEWAY),
            Duration::from_secs(12),
            0,
        );
        let text = metrics.render();

        assert_has(
            &text,
            "# HELP floodgate_requests_total Requests answered, by route, method and status class.",
        );
        assert_has(&text, "# TYPE floodgate_requests_total counter");
        assert_has(
            &text,
            r#"floodgate_requests_total{route="users",method="GET",status_class="2xx"} 2"#,
        );
        assert_has(
            &text,
            r#"floodgate_requests_total{route="users",method="POST",status_class="5xx"} 1"#,
        );
        let request_lines = lines(&text)
            .into_iter()
            .filter(|l| l.starts_with("floodgate_requests_total{"))
            .count();
        assert_eq!(request_lines, 2, "only non-zero series:\n{text}");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::new(2);
        let route = metrics.route("r");
        route.record(
            0,
            (&Method::GET, StatusCode::OK),
            Duration::from_micros(300),
            0,
        );
        route.record(
            1,
            (&Method::GET, StatusCode::OK),
            Duration::from_millis(2),
            0,
        );
        route.record(
            1,
            (&Method::GET, StatusCode::OK),
            Duration::from_millis(2),
            0,
        );
        route.record(
            0,
            (&Method::GET, StatusCode::OK),
            Duration::from_secs(11),
            0,
        );
        let text = metrics.render();

        let expected = [
            r#"floodgate_request_duration_seconds_bucket{route="r",le="0.0005"} 1"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="0.001"} 1"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="0.0025"} 3"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="0.005"} 3"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="0.01"} 3"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="0.025"} 3"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="0.05"} 3"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="0.1"} 3"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="0.25"} 3"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="0.5"} 3"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="1"} 3"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="2.5"} 3"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="5"} 3"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="10"} 3"#,
            r#"floodgate_request_duration_seconds_bucket{route="r",le="+Inf"} 4"#,
            r#"floodgate_request_duration_seconds_sum{route="r"} 11.004300"#,
            r#"floodgate_request_duration_seconds_count{route="r"} 4"#,
        ];
        let got: Vec<&str> = lines(&text)
            .into_iter()
            .filter(|l| l.starts_with("floodgate_request_duration_seconds_"))
            .collect();
        assert_eq!(got, expected);
        assert_has(&text, "# TYPE floodgate_request_duration_seconds histogram");
    }

    #[test]
    fn help_and_type_are_always_present() {
        let text = Metrics::new(1).render();
        for family in [
            REQUESTS,
            DURATION,
            CONNECT_ERRORS,
            TIMEOUTS,
            CONNECTIONS,
            RELOADS,
            CONFIG_AGE,
            LAST_RELOAD,
        ] {
            assert!(text.contains(&format!("# HELP {family} ")), "{family}");
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}");
        }
        assert!(!text.contains("floodgate_requests_total{"));
        assert!(!text.contains("floodgate_request_duration_seconds_bucket"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn route_labels_are_escaped() {
        let metrics = Metrics::new(1);
        metrics.route("we\"ird\\id\nx").record(
            0,
            (&Method::DELETE, StatusCode::NOT_FOUND),
            Duration::ZERO,
            0,
        );
        let text = metrics.render();
        assert_has(
            &text,
            r#"floodgate_requests_total{route="we\"ird\\id\nx",method="DELETE",status_class="4xx"} 1"#,
        );
    }

    #[test]
    fn unmatched_requests_have_an_empty_route_label() {
        let metrics = Metrics::new(2);
        let purge = Method::from_bytes(b"PURGE").unwrap();
        metrics
            .unmatched()
            .record(1, (&purge, StatusCode::NOT_FOUND), Duration::ZERO, 0);
        let text = metrics.render();
        assert_has(
            &text,
            r#"floodgate_requests_total{route="",method="OTHER",status_class="4xx"} 1"#,
        );
        assert_has(
            &text,
            r#"floodgate_request_duration_seconds_count{route=""} 1"#,
        );
    }

    #[test]
    fn upstream_counters_are_summed_and_shown_at_zero() {
        let metrics = Metrics::new(2);
        let users = metrics.upstream("users");
        let _idle = metrics.upstream("idle");
        users.connect_error(0);
        users.connect_error(1);
        users.timeout(1);
        let text = metrics.render();
        assert_has(
            &text,
            r#"floodgate_upstream_connect_errors_total{upstream="users"} 2"#,
        );
        assert_has(
            &text,
            r#"floodgate_upstream_timeouts_total{upstream="users"} 1"#,
        );
        assert_has(
            &text,
            r#"floodgate_upstream_connect_errors_total{upstream="idle"} 0"#,
        );
        assert_has(&text, "# TYPE floodgate_upstream_timeouts_total counter");
    }

    #[test]
    fn open_connections_are_rendered() {
        let metrics = Metrics::new(2);
        metrics.connection_opened(0);
        metrics.connection_opened(1);
        let text = metrics.render();
        assert_has(&text, "floodgate_downstream_connections_open 2");
        assert_has(&text, "# TYPE floodgate_downstream_connections_open gauge");
    }

    #[test]
    fn reloads_are_counted_by_result() {
        let metrics = Metrics::new(1);
        metrics.record_reload(true);
        metrics.record_reload(true);
        metrics.record_reload(false);
        let text = metrics.render();
        assert_has(
            &text,
            r#"floodgate_config_reloads_total{result="failure"} 1"#,
        );
        assert_has(
            &text,
            r#"floodgate_config_reloads_total{result="success"} 2"#,
        );
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // a test thread, not a worker
    fn config_age_appears_once_loaded() {
        let metrics = Metrics::new(1);
        let before = metrics.render();
        assert!(sample_value(&before, CONFIG_AGE).is_none());
        assert!(sample_value(&before, LAST_RELOAD).is_none());
        assert_has(&before, "# TYPE floodgate_config_age_seconds gauge");

        metrics.set_config_loaded_now();
        std::thread::sleep(Duration::from_millis(20));
        let text = metrics.render();
        let age = sample_value(&text, CONFIG_AGE).unwrap();
        assert!((0.02..3600.0).contains(&age), "age {age}");
        let stamp = sample_value(&text, LAST_RELOAD).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            stamp <= now && now - stamp < 3600.0,
            "timestamp {stamp} vs now {now}"
        );

        metrics.set_config_loaded_now();
        let reloaded = sample_value(&metrics.render(), CONFIG_AGE).unwrap();
        assert!(
            reloaded < age,
            "age restarts at a new load: {reloaded} vs {age}"
        );
    }

    #[test]
    fn routes_are_rendered_in_id_order() {
        let metrics = Metrics::new(1);
        for id in ["b", "a", "c"] {
            metrics
                .route(id)
                .record(0, (&Method::GET, StatusCode::OK), Duration::ZERO, 0);
        }
        let text = metrics.render();
        let order: Vec<&str> = lines(&text)
            .into_iter()
            .filter(|l| l.starts_with("floodgate_requests_total{"))
            .collect();
        assert_eq!(
            order,
            [
                r#"floodgate_requests_total{route="a",method="GET",status_class="2xx"} 1"#,
                r#"floodgate_requests_total{route="b",method="GET",status_class="2xx"} 1"#,
                r#"floodgate_requests_total{route="c",method="GET",status_class="2xx"} 1"#,
            ]
        );
    }

    #[test]
    fn recording_from_many_threads_loses_nothing() {
        let metrics = Metrics::new(4);
        let route = metrics.route("hot");
        std::thread::scope(|s| {
            for worker in 0..4 {
                let route = &route;
                s.spawn(move || {
                    for _ in 0..10_000 {
                        route.record(
                            worker,
                            (&Method::GET, StatusCode::OK),
                            Duration::from_micros(1),
                            0,
                        );
                    }
                });
            }
        });
        let text = metrics.render();
        assert_has(
            &text,
            r#"floodgate_requests_total{route="hot",method="GET",status_class="2xx"} 40000"#,
        );
        assert_has(
            &text,
            r#"floodgate_request_duration_seconds_sum{route="hot"} 0.040000"#,
        );
    }
}
