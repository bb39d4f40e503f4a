//! Integration tests: the real readbot on an ephemeral port against the fake
//! DingTalk, asserting on what the group would see.

mod browser;
mod budget;
mod callback;
mod cli;
mod conn;
mod deploy;
mod events;
mod exactly_once;
mod fail_closed;
mod faults;
mod first_hour;
mod follow_ups;
mod group_page;
mod health;
mod helpers;
mod notices;
mod ops;
mod page;
mod postgres;
mod quota;
mod refusals;
mod reliability;
mod remind;
mod replay;
mod replicas;
mod sandbox;
mod secrets;
mod shutdown;
mod stream;
mod summary;
mod tidy;
mod wire;
