//! readbot: a DingTalk bot that tells a group who has read a notice.
//!
//! Module map:
//! - [`app`]: wiring and lifecycle: build everything from config, serve, drain on shutdown.
//! - [`config`]: TOML + environment, parsed once into typed structs; secrets redacted.
//! - [`domain`]: newtypes (`ProcessQueryKey`, `OpenConversationId`, `UserId`, ...) and plain data.
//! - [`dingtalk`]: the only module that knows DingTalk's wire format: client, callback parsing, signatures, errors.
//! - [`store`]: the only module that touches sled or PostgreSQL: notices, de-dup marks, name cache, learned roster.
//! - [`bot`]: transport-agnostic logic: commands, receipts, summaries, chat sentences.
//! - [`render`]: minijinja templates, embedded and overridable, with their view models and samples.
//! - [`http`]: axum routes: callback, notices API, health.
//! - [`metrics`]: Prometheus metric names and the process-wide recorder behind `/metrics`.
//! - [`cli`]: the client-side subcommands: `check`, `send`, `receipts`, `notices`, `render`, `health`.
//! - [`sandbox`]: `readbot sandbox`: readbot + fake DingTalk + demo group, end to end.
//! - [`fake`]: a fake DingTalk speaking the documented wire format, for tests, benchmarks and the sandbox.
//!
//! Dependencies run one way (domain ← config, metrics ← store, dingtalk, render ← bot ← http ← app ← cli; only the
//! sandbox uses the fake): ARCHITECTURE.md's "Layers", enforced by `tests/api/tidy.rs`.

pub mod app;
pub mod bot;
pub mod cli;
pub mod config;
pub mod dingtalk;
pub mod domain;
pub mod fake;
pub mod http;
pub mod metrics;
pub mod render;
pub mod sandbox;
pub mod store;
