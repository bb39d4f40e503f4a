//! Integration tests: the real readbot on an ephemeral port against the fake
//! DingTalk, asserting on what the group would see.

mod budget;
mod callback;
mod helpers;
mod notices;
mod sandbox;
mod summary;
