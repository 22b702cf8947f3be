//! floodgate's upstream targets and load balancers

#![forbid(unsafe_code)]
