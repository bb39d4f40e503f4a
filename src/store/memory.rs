//! In-memory `Store` for unit tests (filled in by the store work).
