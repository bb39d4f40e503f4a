//! sled-backed `Store` (filled in by the store work).
