//! The process-wide plugin counters live with the other metrics (`floodgate-observe`), which renders
//! them; plugins get them through [`crate::BuildCtx::stats`].

pub use floodgate_observe::PluginStats;
