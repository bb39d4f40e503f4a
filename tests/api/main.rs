//! Integration tests: the real readbot on an ephemeral port against the fake
//! DingTalk, asserting on what the group would see.

mod callback;
mod cli;
mod deploy;
mod helpers;
mod notices;
mod ops;
mod sandbox;
mod stream;
mod summary;
