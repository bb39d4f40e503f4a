//! Integration tests: the real readbot on an ephemeral port against the fake
//! DingTalk, asserting on what the group would see.

mod budget;
mod callback;
mod cli;
mod deploy;
mod exactly_once;
mod fail_closed;
mod faults;
mod health;
mod helpers;
mod notices;
mod ops;
mod reliability;
mod sandbox;
mod secrets;
mod shutdown;
mod stream;
mod summary;
mod tidy;
mod wire;
