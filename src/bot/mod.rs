//! Bot logic, independent of transport and storage backend: parse a command,
//! find the notice, gather receipts, render the reply.
//!
//! Depends only on the [`crate::dingtalk::DingTalkApi`] and
//! [`crate::store::Store`] traits; never on axum, reqwest or sled.

pub mod view;
