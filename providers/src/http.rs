//! The HTTP client for the APIs that have no official Rust SDK (Kubernetes, GKE): Slipway's one
//! client, `slipway_http`. The AWS SDKs bring their own (on the same hyper and rustls).

pub(crate) use slipway_http::{Http, HttpError, Response, Tls};
