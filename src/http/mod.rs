//! The HTTP surface (axum): DingTalk callback, readbot's API, health.
