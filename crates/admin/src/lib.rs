//! floodgate's admin listener: health, readiness and metrics

#![forbid(unsafe_code)]
