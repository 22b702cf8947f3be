//! The load a target reports about itself in ORCA's `endpoint-load-metrics` response field, the
//! format Envoy and gRPC read (`TEXT cpu_utilization=0.7, mem_utilization=0.4`). The field comes
//! from the upstream, so it is parsed as untrusted bytes: it has a fuzz target (`fuzz/`), whose
//! property also runs on stable over the committed corpus (`tests/fuzz_corpus.rs`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The response field a target reports its load in.
pub const FIELD: &str = "endpoint-load-metrics";

/// The utilization a report in ORCA's text form gives, from 0 to 1: `application_utilization` when
/// it is there and above 0, else `cpu_utilization` (as Envoy's client-side weighted round robin
/// reads it). `None` for any other form (`JSON`, binary), a report without either, or one with a
/// pair that is not `name=number`. Values past 1 count as 1.
pub fn utilization(value: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let metrics = text.strip_prefix("TEXT ")?;
    let (mut cpu, mut application) = (None, None);
    for pair in metrics.split(',') {
        let (name, number) = pair.trim().split_once('=')?;
        let number: f64 = number.trim().parse().ok().filter(|n: &f64| n.is_finite())?;
        match name.trim() {
            "cpu_utilization" => cpu = Some(number),
            "application_utilization" => application = Some(number),
            _ => {}
        }
    }
    application
        .filter(|u| *u > 0.0)
        .or(cpu)
        .map(|u| u.clamp(0.0, 1.0))
}

/// The fuzz property: any bytes give no utilization or one from 0 to 1, and a report whose only pair
/// is `cpu_utilization=<x>` gives `x` clamped.
pub fn fuzz_property(data: &[u8]) {
    if let Some(u) = utilization(data) {
        assert!((0.0..=1.0).contains(&u), "{u} out of range");
    }
    // The same bytes as the value of a one-pair report.
    if let Ok(number) = std::str::from_utf8(data) {
        if let Ok(x) = number.trim().parse::<f64>() {
            let report = format!("TEXT cpu_utilization={number}");
            let expected = x.is_finite().then(|| x.clamp(0.0, 1.0));
            if !number.contains(',') {
                assert_eq!(utilization(report.as_bytes()), expected, "{report}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::utilization;

    #[test]
    fn text_reports_give_the_application_or_cpu_utilization() {
        assert_eq!(
            utilization(b"TEXT cpu_utilization=0.7, mem_utilization=0.4"),
            Some(0.7)
        );
        assert_eq!(
            utilization(b"TEXT cpu_utilization=0.7,application_utilization=0.2"),
            Some(0.2)
        );
        assert_eq!(
            utilization(b"TEXT cpu_utilization=0.7,application_utilization=0"),
            Some(0.7)
        );
        assert_eq!(utilization(b"  TEXT cpu_utilization=3 "), Some(1.0));
        assert_eq!(utilization(b"TEXT cpu_utilization=-1"), Some(0.0));
        for bad in [
            &b"JSON {\"cpu_utilization\": 0.5}"[..],
            b"TEXT cpu_utilization=x",
            b"TEXT cpu_utilization=NaN",
            b"TEXT cpu_utilization=inf",
            b"TEXT mem_utilization=0.4",
            b"TEXT cpu_utilization",
            b"TEXT cpu_utilization=0.5,,",
            b"text cpu_utilization=0.5",
            b"TEXT cpu_utilization=0.\xff",
        ] {
            assert_eq!(utilization(bad), None, "{}", bad.escape_ascii());
        }
    }
}
