//! The PostgreSQL schema: numbered migrations embedded in the binary,
//! applied in order at start (see [`super::PgStore::connect`]).
//!
//! Rules for a new migration: append it to [`MIGRATIONS`] (never edit one
//! that shipped), keep it runnable inside one transaction, and keep ordered
//! text columns `COLLATE "C"` (byte order, as the sled backend sorts).

/// `(version, SQL)`, in order. Versions start at 1 and have no gaps.
pub(crate) const MIGRATIONS: &[(i32, &str)] = &[(1, V1), (2, V2)];

/// The newest schema version this binary knows.
pub(crate) const LATEST: i32 = 2;

/// The table that records applied versions.
pub(crate) const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS readbot_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// Version 1: every kind of record the `Store` trait keeps. Times are
/// milliseconds since the epoch (`BIGINT`); serde records (`Notice`,
/// `Reminder`, `CachedRoster`, `FollowUp`, `EventTrust`) are JSON in
/// `BYTEA` (no `jsonb`: it refuses `\u0000`, which a title may hold), with
/// the columns lookups and ordering need beside them.
const V1: &str = r#"
CREATE TABLE notices (
    key TEXT COLLATE "C" PRIMARY KEY,
    grp TEXT COLLATE "C" NOT NULL,
    author TEXT COLLATE "C",
    sent_at BIGINT NOT NULL,
    body BYTEA NOT NULL
);
CREATE INDEX notices_by_group ON notices (grp, sent_at DESC, key);
CREATE INDEX notices_by_author ON notices (grp, author, sent_at DESC, key) WHERE author IS NOT NULL;
CREATE INDEX notices_by_time ON notices (sent_at);

CREATE TABLE marks (
    msg_id TEXT COLLATE "C" PRIMARY KEY,
    done BOOLEAN NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX marks_by_time ON marks (at);

CREATE TABLE signatures (
    ts BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    ids TEXT[] NOT NULL
);
CREATE INDEX signatures_by_time ON signatures (at);

CREATE TABLE names (
    user_id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    fetched_at BIGINT NOT NULL,
    verified BOOLEAN NOT NULL
);
CREATE INDEX names_by_time ON names (fetched_at);

CREATE TABLE roster (
    grp TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (grp, user_id)
);
CREATE INDEX roster_by_time ON roster (seen_at);

CREATE TABLE group_titles (
    grp TEXT COLLATE "C" PRIMARY KEY,
    title TEXT NOT NULL,
    at BIGINT NOT NULL
);

CREATE TABLE roster_cache (
    grp TEXT COLLATE "C" PRIMARY KEY,
    fetched_at BIGINT NOT NULL,
    body BYTEA NOT NULL
);

CREATE TABLE reminders (
    id BIGSERIAL PRIMARY KEY,
    key TEXT COLLATE "C" NOT NULL,
    at BIGINT NOT NULL,
    body BYTEA NOT NULL
);
CREATE INDEX reminders_by_notice ON reminders (key, at, id);

CREATE TABLE recalled (
    key TEXT COLLATE "C" PRIMARY KEY,
    at BIGINT NOT NULL
);

CREATE TABLE reads (
    key TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    at BIGINT NOT NULL,
    source SMALLINT NOT NULL,
    PRIMARY KEY (key, user_id)
);

CREATE TABLE reconciled (
    key TEXT COLLATE "C" PRIMARY KEY,
    at BIGINT NOT NULL
);

CREATE TABLE meta (
    name TEXT COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE sends (
    key TEXT COLLATE "C" PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    at BIGINT NOT NULL,
    notice TEXT
);
CREATE INDEX sends_by_time ON sends (at);

CREATE TABLE calls (
    month TEXT COLLATE "C" NOT NULL,
    api TEXT COLLATE "C" NOT NULL,
    calls NUMERIC(20, 0) NOT NULL,
    PRIMARY KEY (month, api)
);

CREATE TABLE follow_ups (
    key TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    at BIGINT NOT NULL,
    state TEXT NOT NULL,
    changed_at BIGINT NOT NULL,
    note TEXT,
    owner INTEGER,
    body BYTEA NOT NULL,
    PRIMARY KEY (key, id)
);
CREATE INDEX follow_ups_due ON follow_ups (state, at, key, id);
"#;

/// Version 2: who holds an in-flight message claim (`owner`, the store's
/// owner id) and whether its answer has started (`started`, set by
/// `make_claim_durable`). A claim whose owner is gone before its answer
/// started is taken over by the replica DingTalk redelivers it to (as a
/// sled claim still only in memory is forgotten by a crash). Rows from
/// version 1 count as started: never taken over, as before.
const V2: &str = r#"
ALTER TABLE marks ADD COLUMN owner INTEGER, ADD COLUMN started BOOLEAN NOT NULL DEFAULT true;
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_start_at_one_without_gaps_and_end_at_latest() {
        for (i, (v, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(usize::try_from(*v).unwrap(), i + 1);
        }
        assert_eq!(MIGRATIONS.last().map(|(v, _)| *v), Some(LATEST));
    }
}
