//! The HTTP client for the APIs that have neither an official Rust SDK nor kube-rs (GitHub, the
//! GKE API and its token exchange): Slipway's one client, `slipway_http`. The AWS SDKs and
//! kube-rs bring their own, on the same hyper and rustls.

pub(crate) use slipway_http::{Http, Response, Tls};
