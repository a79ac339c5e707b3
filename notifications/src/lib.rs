//! Build notifications with Travis's semantics: email, Slack, webhooks and IRC.
//!
//! A plan's [`Notification`](slipway_pipelines::plan::Notification)s say where and when; the
//! pipelines crate decides whether one fires for an outcome. This crate turns a notification and
//! a build's [`BuildFacts`] into [`Message`]s ([`compose`]) and sends them through one seam,
//! [`Sender`], whose real implementation is [`Deliverer`]. `slipway run` composes and prints
//! ([`Message::describe`]); `slipway serve` composes into its durable outbox when a build starts
//! or ends and sends from there, with retries.

mod deliver;
mod email;
mod facts;
mod irc;
mod message;
pub mod template;
pub mod webhook;

pub use deliver::{
    Decrypt, Deliverer, NoSecrets, Reach, SendError, Sender, Settings, Smtp, SmtpTls,
};
pub use facts::{BuildFacts, JobFacts};
pub use message::{Message, compose};
pub use webhook::SigningKey;
