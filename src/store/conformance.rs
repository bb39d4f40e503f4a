//! One conformance suite, generic over [`Store`], run against every backend.
//!
//! Each case is an `async fn` taking the store under test; the
//! `conformance!` macro instantiates all cases for one backend.

use super::{Claim, Cutoffs, EntryCounts, Pruned, SignatureUse, StateChange, Store};
use crate::domain::{
    EpochMillis, EventTrust, FollowUp, FollowUpAction, FollowUpId, FollowUpState, IdempotencyKey,
    Lang, MsgId, Notice, OpenConversationId, ProcessQueryKey, ReadRecord, ReadSource, Reminder,
    ReminderVia, RobotCode, UserId,
};
use std::sync::Arc;

pub(crate) fn gid(s: &str) -> OpenConversationId {
    OpenConversationId::parse(s).unwrap()
}

pub(crate) fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap()
}

pub(crate) fn mid(s: &str) -> MsgId {
    MsgId::parse(s).unwrap()
}

pub(crate) fn notice(key: &str, group: &str, author: Option<&str>, sent_at: EpochMillis) -> Notice {
    Notice {
        key: ProcessQueryKey::parse(key).unwrap(),
        group: gid(group),
        robot_code: RobotCode::parse("dingrobot").unwrap(),
        title: format!("title of {key}"),
        author: author.map(uid),
        author_name: author.map(|a| format!("name of {a}")),
        msg_key: "sampleMarkdown".into(),
        sent_at,
    }
}

fn keys(ns: &[Notice]) -> Vec<&str> {
    ns.iter().map(|n| n.key.as_str()).collect()
}

pub(crate) async fn record_and_get<S: Store>(s: &S) {
    let n = notice("k1+/=", "cid1", Some("alice"), 1_000);
    assert_eq!(s.notice(&n.key).await.unwrap(), None);
    assert_eq!(s.notice_count().await.unwrap(), 0);
    s.record_notice(&n).await.unwrap();
    assert_eq!(s.notice(&n.key).await.unwrap(), Some(n.clone()));
    assert_eq!(s.notice_count().await.unwrap(), 1);
    let other = ProcessQueryKey::parse("k2").unwrap();
    assert_eq!(s.notice(&other).await.unwrap(), None);
}

pub(crate) async fn list_newest_first_with_limit<S: Store>(s: &S) {
    // Recorded out of order; includes a negative and a zero time and a tie.
    for n in [
        notice("b", "cid1", Some("alice"), 2_000),
        notice("a", "cid1", Some("bob"), 3_000),
        notice("d", "cid1", None, -5),
        notice("c", "cid1", Some("alice"), 0),
        notice("e", "cid1", Some("bob"), 2_000),
    ] {
        s.record_notice(&n).await.unwrap();
    }
    let all = s.notices_in_group(&gid("cid1"), 100).await.unwrap();
    // Newest first; a tie is broken by key ascending.
    assert_eq!(keys(&all), ["a", "b", "e", "c", "d"]);
    let two = s.notices_in_group(&gid("cid1"), 2).await.unwrap();
    assert_eq!(keys(&two), ["a", "b"]);
    assert!(s
        .notices_in_group(&gid("cid1"), 0)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .notices_in_group(&gid("cid2"), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.notice_count().await.unwrap(), 5);
}

pub(crate) async fn groups_with_prefix_ids_do_not_leak<S: Store>(s: &S) {
    s.record_notice(&notice("k1", "cid1", Some("al"), 1_000))
        .await
        .unwrap();
    s.record_notice(&notice("k10", "cid10", Some("al"), 2_000))
        .await
        .unwrap();
    s.record_notice(&notice("k1b", "cid1", Some("alice"), 3_000))
        .await
        .unwrap();

    let g1 = s.notices_in_group(&gid("cid1"), 10).await.unwrap();
    assert_eq!(keys(&g1), ["k1b", "k1"]);
    let g10 = s.notices_in_group(&gid("cid10"), 10).await.unwrap();
    assert_eq!(keys(&g10), ["k10"]);
    assert!(s
        .notices_in_group(&gid("cid"), 10)
        .await
        .unwrap()
        .is_empty());

    // Author "al" is a prefix of "alice"; group "cid1" a prefix of "cid10".
    let al1 = s.last_notice_by(&gid("cid1"), &uid("al")).await.unwrap();
    assert_eq!(
        al1.map(|n| n.key.as_str().to_owned()).as_deref(),
        Some("k1")
    );
    let al10 = s.last_notice_by(&gid("cid10"), &uid("al")).await.unwrap();
    assert_eq!(
        al10.map(|n| n.key.as_str().to_owned()).as_deref(),
        Some("k10")
    );
    assert_eq!(
        s.last_notice_by(&gid("cid10"), &uid("alice"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.last_notice_by(&gid("cid"), &uid("al")).await.unwrap(),
        None
    );
}

pub(crate) async fn last_notice_by_author<S: Store>(s: &S) {
    for n in [
        notice("a1", "cid1", Some("alice"), 1_000),
        notice("b1", "cid1", Some("bob"), 5_000),
        notice("a2", "cid1", Some("alice"), 3_000),
        notice("x", "cid1", None, 9_000),
        notice("a3", "cid2", Some("alice"), 9_000),
    ] {
        s.record_notice(&n).await.unwrap();
    }
    let last = s.last_notice_by(&gid("cid1"), &uid("alice")).await.unwrap();
    assert_eq!(last.unwrap().key.as_str(), "a2");
    let last = s.last_notice_by(&gid("cid1"), &uid("bob")).await.unwrap();
    assert_eq!(last.unwrap().key.as_str(), "b1");
    let last = s.last_notice_by(&gid("cid2"), &uid("alice")).await.unwrap();
    assert_eq!(last.unwrap().key.as_str(), "a3");
    assert_eq!(
        s.last_notice_by(&gid("cid1"), &uid("carol")).await.unwrap(),
        None
    );
}

pub(crate) async fn re_record_overwrites_without_stale_entries<S: Store>(s: &S) {
    s.record_notice(&notice("k", "cid1", Some("alice"), 1_000))
        .await
        .unwrap();
    s.record_notice(&notice("old", "cid1", Some("alice"), 2_000))
        .await
        .unwrap();
    // Same key: new time, new author, new title.
    let mut moved = notice("k", "cid1", Some("bob"), 3_000);
    moved.title = "edited".into();
    s.record_notice(&moved).await.unwrap();

    assert_eq!(s.notice_count().await.unwrap(), 2);
    assert_eq!(s.notice(&moved.key).await.unwrap().unwrap().title, "edited");
    let all = s.notices_in_group(&gid("cid1"), 10).await.unwrap();
    assert_eq!(keys(&all), ["k", "old"]);
    let alice = s.last_notice_by(&gid("cid1"), &uid("alice")).await.unwrap();
    assert_eq!(alice.unwrap().key.as_str(), "old");
    let bob = s.last_notice_by(&gid("cid1"), &uid("bob")).await.unwrap();
    assert_eq!(bob.unwrap(), moved);

    // Moving to another group and dropping the author.
    let mut elsewhere = notice("k", "cid2", None, 500);
    elsewhere.title = "moved".into();
    s.record_notice(&elsewhere).await.unwrap();
    let g1 = s.notices_in_group(&gid("cid1"), 10).await.unwrap();
    assert_eq!(keys(&g1), ["old"]);
    let g2 = s.notices_in_group(&gid("cid2"), 10).await.unwrap();
    assert_eq!(g2, vec![elsewhere]);
    assert_eq!(
        s.last_notice_by(&gid("cid1"), &uid("bob")).await.unwrap(),
        None
    );
    assert_eq!(s.notice_count().await.unwrap(), 2);
}

pub(crate) async fn claim_lifecycle<S: Store>(s: &S) {
    let id = mid("msg1");
    assert_eq!(s.claim_message(&id, 10).await.unwrap(), Claim::New);
    assert_eq!(s.claim_message(&id, 11).await.unwrap(), Claim::InFlight);
    s.finish_message(&id, 12).await.unwrap();
    assert_eq!(s.claim_message(&id, 13).await.unwrap(), Claim::Done);
    // Another id is independent.
    assert_eq!(s.claim_message(&mid("msg2"), 14).await.unwrap(), Claim::New);
}

pub(crate) async fn concurrent_claims_have_one_winner<S: Store>(s: Arc<S>) {
    let id = mid("contended");
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let s = Arc::clone(&s);
            let id = id.clone();
            tokio::spawn(async move { s.claim_message(&id, i).await.unwrap() })
        })
        .collect();
    let mut new = 0;
    for t in tasks {
        match t.await.unwrap() {
            Claim::New => new += 1,
            Claim::InFlight => {}
            Claim::Done => panic!("nobody finished the message"),
        }
    }
    assert_eq!(new, 1);
}

pub(crate) async fn prune_removes_every_old_mark_and_keeps_recent<S: Store>(s: &S) {
    for (id, at) in [("old1", 100), ("old2", 200), ("recent", 1_000)] {
        assert_eq!(s.claim_message(&mid(id), at).await.unwrap(), Claim::New);
        s.finish_message(&mid(id), at).await.unwrap();
    }
    // Claimed long ago, never finished (a crash mid-answer): it expires too,
    // counted from its claim, so a crash leaks no mark.
    assert_eq!(s.claim_message(&mid("stuck"), 1).await.unwrap(), Claim::New);
    // Claimed recently and still in flight: kept.
    assert_eq!(
        s.claim_message(&mid("busy"), 900).await.unwrap(),
        Claim::New
    );

    assert_eq!(s.prune_marks(500).await.unwrap(), 3);
    assert_eq!(s.prune_marks(500).await.unwrap(), 0);
    assert_eq!(
        s.claim_message(&mid("busy"), 2).await.unwrap(),
        Claim::InFlight
    );
    assert_eq!(
        s.claim_message(&mid("recent"), 2).await.unwrap(),
        Claim::Done
    );
    // Pruned marks are forgotten: the id may be claimed again.
    assert_eq!(s.claim_message(&mid("old1"), 2).await.unwrap(), Claim::New);
    assert_eq!(s.claim_message(&mid("stuck"), 2).await.unwrap(), Claim::New);
    // `before` is exclusive.
    assert_eq!(s.prune_marks(900).await.unwrap(), 2); // old1 and stuck, re-claimed at 2
    assert_eq!(s.prune_marks(1_000).await.unwrap(), 1); // busy (900)
    assert_eq!(s.prune_marks(1_001).await.unwrap(), 1); // recent (1,000)
}

pub(crate) async fn names_freshness<S: Store>(s: &S) {
    s.cache_names(&[(uid("u1"), "Ann".into()), (uid("u2"), "Bo".into())], 100)
        .await
        .unwrap();
    s.cache_names(&[(uid("u3"), "张三".into())], 200)
        .await
        .unwrap();
    let asked = [uid("u3"), uid("u1"), uid("u2"), uid("u4"), uid("u1")];

    let all = s.cached_names(&asked, 100).await.unwrap();
    assert_eq!(
        all,
        vec![
            (uid("u3"), "张三".to_owned()),
            (uid("u1"), "Ann".to_owned()),
            (uid("u2"), "Bo".to_owned()),
        ]
    );
    let fresh = s.cached_names(&asked, 101).await.unwrap();
    assert_eq!(fresh, vec![(uid("u3"), "张三".to_owned())]);
    assert!(s.cached_names(&asked, 201).await.unwrap().is_empty());
    assert!(s.cached_names(&[], 0).await.unwrap().is_empty());

    // Refetching replaces name and time.
    s.cache_names(&[(uid("u1"), "Anna".into())], 300)
        .await
        .unwrap();
    assert_eq!(
        s.cached_names(&[uid("u1")], 300).await.unwrap(),
        vec![(uid("u1"), "Anna".to_owned())]
    );
}

pub(crate) async fn learned_roster<S: Store>(s: &S) {
    assert!(s.learned_members(&gid("cid1")).await.unwrap().is_empty());
    s.remember_members(&gid("cid1"), &[uid("zed"), uid("amy")], 1)
        .await
        .unwrap();
    s.remember_members(&gid("cid1"), &[uid("amy"), uid("max")], 2)
        .await
        .unwrap();
    s.remember_members(&gid("cid10"), &[uid("other")], 3)
        .await
        .unwrap();
    s.remember_members(&gid("cid1"), &[], 4).await.unwrap();
    assert_eq!(
        s.learned_members(&gid("cid1")).await.unwrap(),
        vec![uid("amy"), uid("max"), uid("zed")]
    );
    assert_eq!(
        s.learned_members(&gid("cid10")).await.unwrap(),
        vec![uid("other")]
    );
    assert!(s.learned_members(&gid("cid")).await.unwrap().is_empty());
    s.flush().await.unwrap();
}

/// Group titles: last one wins, unchanged ones are not rewritten within the
/// refresh period, long ones are cut, and they expire with the roster.
pub(crate) async fn group_titles<S: Store>(s: &S) {
    assert_eq!(s.group_title(&gid("cid1")).await.unwrap(), None);
    s.remember_group_title(&gid("cid1"), "Ops «team»", 1_000)
        .await
        .unwrap();
    s.remember_group_title(&gid("cid10"), "Other", 1_000)
        .await
        .unwrap();
    assert_eq!(
        s.group_title(&gid("cid1")).await.unwrap().as_deref(),
        Some("Ops «team»")
    );
    assert_eq!(s.group_title(&gid("cid")).await.unwrap(), None);
    // Unchanged and recent: not rewritten, so its time stays 1,000 and a
    // roster cut-off of 2,000 removes it below.
    s.remember_group_title(&gid("cid1"), "Ops «team»", 1_500)
        .await
        .unwrap();
    // A change is written at once.
    s.remember_group_title(&gid("cid10"), "Renamed", 3_000)
        .await
        .unwrap();
    assert_eq!(
        s.group_title(&gid("cid10")).await.unwrap().as_deref(),
        Some("Renamed")
    );
    let long = "群".repeat(200);
    s.remember_group_title(&gid("cid2"), &long, 3_000)
        .await
        .unwrap();
    let kept = s.group_title(&gid("cid2")).await.unwrap().unwrap();
    assert!(kept.len() <= super::GROUP_TITLE_BYTES && !kept.is_empty());
    assert!(long.starts_with(&kept));
    let cutoffs = Cutoffs {
        notices_before: 0,
        names_before: 0,
        roster_before: 2_000,
    };
    s.prune_old(cutoffs).await.unwrap();
    assert_eq!(s.group_title(&gid("cid1")).await.unwrap(), None);
    assert_eq!(
        s.group_title(&gid("cid10")).await.unwrap().as_deref(),
        Some("Renamed")
    );
    // An unchanged title older than the refresh period is written again,
    // which restarts its retention clock.
    let later = 3_000 + super::GROUP_TITLE_REFRESH_MS + 1;
    s.remember_group_title(&gid("cid10"), "Renamed", later)
        .await
        .unwrap();
    let cutoffs = Cutoffs {
        notices_before: 0,
        names_before: 0,
        roster_before: later,
    };
    s.prune_old(cutoffs).await.unwrap();
    assert_eq!(
        s.group_title(&gid("cid10")).await.unwrap().as_deref(),
        Some("Renamed")
    );
    assert_eq!(s.group_title(&gid("cid2")).await.unwrap(), None);
    s.flush().await.unwrap();
}

pub(crate) async fn cached_roster_is_kept_per_group_and_replaced<S: Store>(s: &S) {
    use crate::domain::{CachedRoster, Member, RosterSource};
    assert_eq!(s.cached_roster(&gid("cid1")).await.unwrap(), None);
    let list = |ids: &[&str], at| CachedRoster {
        source: RosterSource::InnerGroup,
        members: ids
            .iter()
            .map(|u| Member {
                user_id: uid(u),
                name: Some(format!("N {u}")),
            })
            .collect(),
        fetched_at: at,
    };
    s.cache_roster(&gid("cid1"), &list(&["a", "b"], 10))
        .await
        .unwrap();
    s.cache_roster(&gid("cid10"), &list(&["z"], 11))
        .await
        .unwrap();
    assert_eq!(
        s.cached_roster(&gid("cid1")).await.unwrap(),
        Some(list(&["a", "b"], 10))
    );
    // A newer fetch replaces the list, members who left included.
    s.cache_roster(&gid("cid1"), &list(&["b", "c"], 20))
        .await
        .unwrap();
    assert_eq!(
        s.cached_roster(&gid("cid1")).await.unwrap(),
        Some(list(&["b", "c"], 20))
    );
    assert_eq!(
        s.cached_roster(&gid("cid10")).await.unwrap(),
        Some(list(&["z"], 11))
    );
    // Retention removes lists fetched before the roster cutoff.
    s.prune_old(Cutoffs {
        notices_before: 0,
        names_before: 0,
        roster_before: 15,
    })
    .await
    .unwrap();
    assert_eq!(s.cached_roster(&gid("cid10")).await.unwrap(), None);
    assert!(s.cached_roster(&gid("cid1")).await.unwrap().is_some());
}

/// `size_bytes` answers for an empty store and does not shrink while
/// notices, marks, names and roster entries are added and flushed (what a
/// backend's size can be checked for generically; sled's is also checked to
/// be non-zero in its own tests).
pub(crate) async fn size_does_not_shrink_as_data_is_added<S: Store>(s: &S) {
    let mut last = s.size_bytes().await.unwrap();
    for i in 0..20 {
        let who = format!("user{i}");
        s.record_notice(&notice(&format!("size{i}"), "cid1", Some(&who), i))
            .await
            .unwrap();
        let id = mid(&format!("m{i}"));
        assert_eq!(s.claim_message(&id, i).await.unwrap(), Claim::New);
        s.finish_message(&id, i).await.unwrap();
        s.cache_names(&[(uid(&who), format!("Name {i}"))], i)
            .await
            .unwrap();
        s.remember_members(&gid("cid1"), &[uid(&who)], i)
            .await
            .unwrap();
        s.flush().await.unwrap();
        let now = s.size_bytes().await.unwrap();
        assert!(
            now >= last,
            "size went from {last} to {now} after write {i}"
        );
        last = now;
    }
}

/// A signed timestamp allows `limit` distinct message ids; a recorded id is
/// allowed again (DingTalk's redelivery); the next distinct id is refused and
/// not recorded; another timestamp is independent.
pub(crate) async fn a_signature_allows_a_bounded_number_of_messages<S: Store>(s: &S) {
    use SignatureUse::{Allowed, Exhausted};
    let ts = 1_700_000_000_123;
    for id in ["a", "b", "c"] {
        assert_eq!(s.use_signature(ts, &mid(id), 10, 3).await.unwrap(), Allowed);
    }
    assert_eq!(
        s.use_signature(ts, &mid("d"), 11, 3).await.unwrap(),
        Exhausted
    );
    assert_eq!(
        s.use_signature(ts, &mid("b"), 12, 3).await.unwrap(),
        Allowed
    );
    assert_eq!(
        s.use_signature(ts, &mid("d"), 13, 3).await.unwrap(),
        Exhausted
    );
    assert_eq!(
        s.use_signature(ts + 1, &mid("d"), 14, 3).await.unwrap(),
        Allowed
    );
    // A limit of one binds the pair to its first message.
    assert_eq!(
        s.use_signature(-5, &mid("x"), 15, 1).await.unwrap(),
        Allowed
    );
    assert_eq!(
        s.use_signature(-5, &mid("x"), 16, 1).await.unwrap(),
        Allowed
    );
    assert_eq!(
        s.use_signature(-5, &mid("y"), 17, 1).await.unwrap(),
        Exhausted
    );
}

/// Many distinct messages racing for one signature: exactly `limit` win.
pub(crate) async fn racing_messages_never_exceed_a_signatures_limit<S: Store>(s: Arc<S>) {
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                s.use_signature(42, &mid(&format!("race{i}")), 1, 3)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        if t.await.unwrap() == SignatureUse::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 3);
}

/// Signature records expire with the de-duplication marks, counted from
/// their last write; a pruned signature starts afresh.
pub(crate) async fn signature_records_expire_with_the_marks<S: Store>(s: &S) {
    use SignatureUse::{Allowed, Exhausted};
    assert_eq!(
        s.use_signature(1, &mid("old"), 100, 1).await.unwrap(),
        Allowed
    );
    assert_eq!(
        s.use_signature(2, &mid("a"), 100, 2).await.unwrap(),
        Allowed
    );
    assert_eq!(
        s.use_signature(2, &mid("b"), 600, 2).await.unwrap(),
        Allowed
    );
    assert_eq!(
        s.claim_message(&mid("mark"), 100).await.unwrap(),
        Claim::New
    );
    // The mark and timestamp 1; timestamp 2 was last written at 600.
    assert_eq!(s.prune_marks(500).await.unwrap(), 2);
    assert_eq!(
        s.use_signature(2, &mid("c"), 700, 2).await.unwrap(),
        Exhausted
    );
    assert_eq!(
        s.use_signature(1, &mid("new"), 700, 1).await.unwrap(),
        Allowed
    );
    assert_eq!(s.prune_marks(10_000).await.unwrap(), 2);
    assert_eq!(
        s.use_signature(2, &mid("c"), 800, 2).await.unwrap(),
        Allowed
    );
}

/// Name source precedence: a callback's name never overrides one from
/// DingTalk's APIs and is never returned as one; an API name replaces it.
pub(crate) async fn callback_names_never_override_api_names<S: Store>(s: &S) {
    s.cache_names(&[(uid("u1"), "Ann".into())], 100)
        .await
        .unwrap();
    // Even a stale API name is not replaced by a callback's.
    s.cache_callback_name(&uid("u1"), "[Ann](https://phish)", 9_000)
        .await
        .unwrap();
    assert_eq!(
        s.cached_names(&[uid("u1")], 0).await.unwrap(),
        vec![(uid("u1"), "Ann".to_owned())]
    );
    assert!(s.callback_names(&[uid("u1")], 0).await.unwrap().is_empty());

    // A callback name alone is only a last-resort hint.
    s.cache_callback_name(&uid("u2"), "Bo?", 200).await.unwrap();
    s.cache_callback_name(&uid("u2"), "Bo", 300).await.unwrap();
    assert!(s.cached_names(&[uid("u2")], 0).await.unwrap().is_empty());
    assert_eq!(
        s.callback_names(&[uid("u2"), uid("u2"), uid("u3")], 300)
            .await
            .unwrap(),
        vec![(uid("u2"), "Bo".to_owned())]
    );
    assert!(s
        .callback_names(&[uid("u2")], 301)
        .await
        .unwrap()
        .is_empty());
    // DingTalk's name replaces it.
    s.cache_names(&[(uid("u2"), "Bob".into())], 400)
        .await
        .unwrap();
    assert_eq!(
        s.cached_names(&[uid("u2")], 0).await.unwrap(),
        vec![(uid("u2"), "Bob".to_owned())]
    );
    assert!(s.callback_names(&[uid("u2")], 0).await.unwrap().is_empty());
}

fn read(user: &str, at: EpochMillis, source: ReadSource) -> ReadRecord {
    ReadRecord {
        user_id: uid(user),
        at,
        source,
    }
}

pub(crate) async fn reads_merge_by_reader<S: Store>(s: &S) {
    let k = ProcessQueryKey::parse("k1+/=").unwrap();
    let k10 = ProcessQueryKey::parse("k1+/=0").unwrap();
    assert!(s.reads(&k).await.unwrap().is_empty());
    // First sightings by a query, then events (one out of order, one duplicate).
    let q = [
        read("bob", 500, ReadSource::Query),
        read("cy", 500, ReadSource::Query),
    ];
    assert_eq!(s.record_reads(&k, &q).await.unwrap(), 2);
    assert_eq!(
        s.record_reads(&k, &q).await.unwrap(),
        0,
        "same again: nothing"
    );
    let later_query = [read("bob", 900, ReadSource::Query)];
    assert_eq!(
        s.record_reads(&k, &later_query).await.unwrap(),
        0,
        "first sighting stays"
    );
    assert_eq!(
        s.record_reads(&k, &[read("ann", 300, ReadSource::Event)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.record_reads(&k, &[read("bob", 200, ReadSource::Event)])
            .await
            .unwrap(),
        1,
        "an event replaces a sighting"
    );
    assert_eq!(
        s.record_reads(&k, &[read("ann", 300, ReadSource::Event)])
            .await
            .unwrap(),
        0,
        "duplicate event"
    );
    assert_eq!(
        s.record_reads(&k, &[read("ann", 400, ReadSource::Event)])
            .await
            .unwrap(),
        0,
        "a later copy"
    );
    assert_eq!(
        s.record_reads(&k, &[read("ann", 100, ReadSource::Query)])
            .await
            .unwrap(),
        0,
        "a query never replaces an event"
    );
    // Another key sharing the prefix does not leak in.
    s.record_reads(&k10, &[read("dan", 1, ReadSource::Event)])
        .await
        .unwrap();
    assert_eq!(
        s.reads(&k).await.unwrap(),
        vec![
            read("bob", 200, ReadSource::Event),
            read("ann", 300, ReadSource::Event),
            read("cy", 500, ReadSource::Query),
        ],
        "by time, then user"
    );
    assert_eq!(s.reads(&k10).await.unwrap().len(), 1);
}

pub(crate) async fn recall_reconcile_and_trust<S: Store>(s: &S) {
    let k = ProcessQueryKey::parse("k1").unwrap();
    assert_eq!(s.recalled_at(&k).await.unwrap(), None);
    assert!(s.mark_recalled(&k, 10).await.unwrap());
    assert!(
        !s.mark_recalled(&k, 20).await.unwrap(),
        "the first mark stays"
    );
    assert_eq!(s.recalled_at(&k).await.unwrap(), Some(10));
    assert_eq!(s.reconciled_at(&k).await.unwrap(), None);
    s.set_reconciled_at(&k, 30).await.unwrap();
    s.set_reconciled_at(&k, 40).await.unwrap();
    assert_eq!(s.reconciled_at(&k).await.unwrap(), Some(40));
    let other = ProcessQueryKey::parse("k2").unwrap();
    assert_eq!(s.reconciled_at(&other).await.unwrap(), None);
    assert_eq!(s.recalled_at(&other).await.unwrap(), None);
    assert_eq!(s.event_trust().await.unwrap(), EventTrust::default());
    let t = EventTrust {
        verified: true,
        changed_at: Some(5),
        last_pass_at: Some(6),
        last_gap_at: None,
        last_gap_missed: 0,
    };
    s.set_event_trust(&t).await.unwrap();
    assert_eq!(s.event_trust().await.unwrap(), t);
}

/// The quota ledger adds per API and month, keeps months apart, and
/// concurrent adds lose nothing.
pub(crate) async fn call_ledger_adds_per_api_and_month<S: Store>(s: std::sync::Arc<S>) {
    let march = crate::domain::BillingMonth::new(2025, 3).unwrap();
    let april = crate::domain::BillingMonth::new(2025, 4).unwrap();
    assert!(s.calls_in_month(&march).await.unwrap().is_empty());
    s.add_calls(
        &march,
        &[
            ("robot.groupMessages.query", 45),
            ("robot.groupMessages.send", 1),
        ],
    )
    .await
    .unwrap();
    s.add_calls(
        &march,
        &[
            ("robot.groupMessages.query", 5),
            ("robot.groupMessages.recall", 0),
        ],
    )
    .await
    .unwrap();
    s.add_calls(&april, &[("robot.groupMessages.send", 2)])
        .await
        .unwrap();
    assert_eq!(
        s.calls_in_month(&march).await.unwrap(),
        vec![
            ("robot.groupMessages.query".to_owned(), 50),
            ("robot.groupMessages.send".to_owned(), 1),
        ],
        "sorted by API; a zero adds no entry"
    );
    assert_eq!(
        s.calls_in_month(&april).await.unwrap(),
        vec![("robot.groupMessages.send".to_owned(), 2)]
    );
    s.add_calls(&april, &[("robot.groupMessages.send", u64::MAX)])
        .await
        .unwrap();
    assert_eq!(
        s.calls_in_month(&april).await.unwrap()[0].1,
        u64::MAX,
        "saturates"
    );
    let may = crate::domain::BillingMonth::new(2025, 5).unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            let may = may.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    s.add_calls(&may, &[("robot.groupMessages.query", 1)])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        s.calls_in_month(&may).await.unwrap(),
        vec![("robot.groupMessages.query".to_owned(), 200)]
    );
}

/// The link key is stored once: the first candidate wins and every later
/// call (or reader) gets it back.
pub(crate) async fn link_key_is_set_once<S: Store>(s: &S) {
    assert_eq!(s.link_key().await.unwrap(), None);
    assert_eq!(s.init_link_key(b"first key").await.unwrap(), b"first key");
    assert_eq!(s.init_link_key(b"second key").await.unwrap(), b"first key");
    assert_eq!(
        s.link_key().await.unwrap().as_deref(),
        Some(&b"first key"[..])
    );
}

pub(crate) fn ikey(s: &str) -> IdempotencyKey {
    IdempotencyKey::parse(s).unwrap()
}

/// A send is reserved once per key; completing it records the notice and
/// the key then names it; abandoning frees only a pending key.
pub(crate) async fn sends_are_reserved_once_per_key<S: Store>(s: &S) {
    let k = ikey("order-42");
    assert_eq!(s.begin_send(&k, "fp1", 10).await.unwrap(), None);
    let pending = s.begin_send(&k, "fp2", 11).await.unwrap().unwrap();
    assert_eq!(pending.fingerprint, "fp1", "the first reservation is kept");
    assert_eq!(pending.at, 10);
    assert_eq!(pending.notice, None);

    let n = notice("dk1", "cid1", Some("alice"), 12);
    s.complete_send(&k, &n).await.unwrap();
    assert_eq!(s.notice(&n.key).await.unwrap(), Some(n.clone()));
    assert_eq!(
        s.last_notice_by(&gid("cid1"), &uid("alice")).await.unwrap(),
        Some(n.clone())
    );
    let sent = s.begin_send(&k, "fp1", 13).await.unwrap().unwrap();
    assert_eq!(sent.notice, Some(n.key.clone()));
    // A sent record is never abandoned.
    s.abandon_send(&k).await.unwrap();
    assert!(s.begin_send(&k, "fp1", 14).await.unwrap().is_some());

    // A pending one is: the key may be reserved again.
    let other = ikey("order-43");
    assert_eq!(s.begin_send(&other, "fp", 15).await.unwrap(), None);
    s.abandon_send(&other).await.unwrap();
    assert_eq!(s.begin_send(&other, "fp", 16).await.unwrap(), None);
    // Abandoning an unknown key is fine; completing one is an error.
    s.abandon_send(&ikey("never")).await.unwrap();
    assert!(s
        .complete_send(&ikey("never"), &notice("dk2", "cid1", None, 1))
        .await
        .is_err());
    assert_eq!(s.notice_count().await.unwrap(), 1);
}

/// Of many concurrent reservations of one key, exactly one wins.
pub(crate) async fn concurrent_sends_have_one_winner<S: Store>(s: Arc<S>) {
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { s.begin_send(&ikey("same"), "fp", i).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap().is_none());
    }
    assert_eq!(winners, 1);
}

/// The probe write succeeds on a healthy store, again and again.
pub(crate) async fn probe_write_succeeds<S: Store>(s: &S) {
    for now in 0..3 {
        s.probe_write(now).await.unwrap();
    }
}

/// A notice removed by retention takes its per-notice data with it (reads,
/// reminders, recall and reconciliation marks); another notice keeps its own.
pub(crate) async fn pruning_a_notice_forgets_its_reads_reminders_and_marks<S: Store>(s: &S) {
    let old = ProcessQueryKey::parse("old").unwrap();
    let new = ProcessQueryKey::parse("new").unwrap();
    for (key, at) in [("old", 100), ("new", 1_000)] {
        s.record_notice(&notice(key, "cid1", Some("alice"), at))
            .await
            .unwrap();
    }
    for k in [&old, &new] {
        let read = ReadRecord {
            user_id: uid("u1"),
            at: 150,
            source: ReadSource::Event,
        };
        s.record_reads(k, &[read]).await.unwrap();
        let reminder = Reminder {
            by: Some(uid("alice")),
            at: 160,
            count: 1,
            via: ReminderVia::Dm,
        };
        s.record_reminder(k, &reminder).await.unwrap();
        s.mark_recalled(k, 170).await.unwrap();
        s.set_reconciled_at(k, 180).await.unwrap();
    }
    let cutoffs = Cutoffs {
        notices_before: 500,
        names_before: 0,
        roster_before: 0,
    };
    assert_eq!(s.prune_old(cutoffs).await.unwrap().notices, 1);
    assert!(s.reads(&old).await.unwrap().is_empty());
    assert!(s.reminders(&old).await.unwrap().is_empty());
    assert_eq!(s.recalled_at(&old).await.unwrap(), None);
    assert_eq!(s.reconciled_at(&old).await.unwrap(), None);
    assert_eq!(s.reads(&new).await.unwrap().len(), 1);
    assert_eq!(s.reminders(&new).await.unwrap().len(), 1);
    assert_eq!(s.recalled_at(&new).await.unwrap(), Some(170));
    assert_eq!(s.reconciled_at(&new).await.unwrap(), Some(180));
}

/// Retention removes what is older than each cut-off, keeps the rest, and
/// the listings and counts follow.
pub(crate) async fn prune_old_removes_only_what_is_older<S: Store>(s: &S) {
    s.record_notice(&notice("old", "cid1", Some("alice"), 100))
        .await
        .unwrap();
    s.record_notice(&notice("new", "cid1", Some("alice"), 1_000))
        .await
        .unwrap();
    assert_eq!(
        s.begin_send(&ikey("old-send"), "fp", 50).await.unwrap(),
        None
    );
    assert_eq!(
        s.begin_send(&ikey("new-send"), "fp", 2_000).await.unwrap(),
        None
    );
    s.cache_names(&[(uid("u1"), "Ann".into())], 100)
        .await
        .unwrap();
    s.cache_names(&[(uid("u2"), "Bo".into())], 1_000)
        .await
        .unwrap();
    s.remember_members(&gid("cid1"), &[uid("u1")], 100)
        .await
        .unwrap();
    s.remember_members(&gid("cid1"), &[uid("u2")], 1_000)
        .await
        .unwrap();
    s.remember_members(&gid("cid2"), &[uid("u3")], 100)
        .await
        .unwrap();
    assert_eq!(
        s.entry_counts().await.unwrap(),
        EntryCounts {
            notices: 2,
            marks: 0,
            names: 2,
            roster: 3,
            sends: 2,
        }
    );
    let cutoffs = Cutoffs {
        notices_before: 500,
        names_before: 500,
        roster_before: 500,
    };
    assert_eq!(
        s.prune_old(cutoffs).await.unwrap(),
        Pruned {
            notices: 1,
            sends: 1,
            names: 1,
            roster: 2,
        }
    );
    assert_eq!(s.prune_old(cutoffs).await.unwrap(), Pruned::default());
    assert_eq!(
        keys(&s.notices_in_group(&gid("cid1"), 10).await.unwrap()),
        ["new"]
    );
    assert_eq!(
        s.last_notice_by(&gid("cid1"), &uid("alice"))
            .await
            .unwrap()
            .map(|n| n.key.as_str().to_owned())
            .as_deref(),
        Some("new")
    );
    assert_eq!(
        s.cached_names(&[uid("u1"), uid("u2")], 0)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(s.learned_members(&gid("cid1")).await.unwrap(), [uid("u2")]);
    assert!(s.learned_members(&gid("cid2")).await.unwrap().is_empty());
    // A pruned send key may be used again.
    assert_eq!(
        s.begin_send(&ikey("old-send"), "fp", 3_000).await.unwrap(),
        None
    );
    let counts = s.entry_counts().await.unwrap();
    assert_eq!(
        (counts.notices, counts.names, counts.roster, counts.sends),
        (1, 1, 1, 2)
    );
}

/// Instantiates every conformance case for one backend. `$make` is an
/// expression returning `(guard, store)`; the guard (e.g. a temporary
/// folder) outlives the store.
pub(crate) fn reminder(
    by: Option<&str>,
    at: EpochMillis,
    count: usize,
    via: ReminderVia,
) -> Reminder {
    Reminder {
        by: by.map(uid),
        at,
        count,
        via,
    }
}

pub(crate) async fn reminders_in_time_order_per_notice<S: Store>(s: &S) {
    let k = |x: &str| ProcessQueryKey::parse(x).unwrap();
    assert!(s.reminders(&k("k1")).await.unwrap().is_empty());
    let late = reminder(Some("alice"), 5_000, 50, ReminderVia::Mention);
    let early = reminder(None, -3, 7, ReminderVia::Dm);
    let tie = reminder(Some("bob"), 5_000, 1, ReminderVia::Dm);
    s.record_reminder(&k("k1"), &late).await.unwrap();
    s.record_reminder(&k("k1"), &early).await.unwrap();
    s.record_reminder(&k("k1"), &tie).await.unwrap();
    // A key that is a prefix of another keeps its own list.
    s.record_reminder(&k("k10"), &early).await.unwrap();
    assert_eq!(
        s.reminders(&k("k1")).await.unwrap(),
        [early.clone(), late, tie],
        "oldest first; a tie keeps recording order"
    );
    assert_eq!(s.reminders(&k("k10")).await.unwrap(), [early]);
    assert!(s.reminders(&k("k")).await.unwrap().is_empty());
}

pub(crate) async fn recall_mark_keeps_the_first_time<S: Store>(s: &S) {
    let k = |x: &str| ProcessQueryKey::parse(x).unwrap();
    assert_eq!(s.recalled_at(&k("k1")).await.unwrap(), None);
    s.mark_recalled(&k("k1"), 1_000).await.unwrap();
    s.mark_recalled(&k("k1"), 2_000).await.unwrap();
    assert_eq!(s.recalled_at(&k("k1")).await.unwrap(), Some(1_000));
    assert_eq!(s.recalled_at(&k("k10")).await.unwrap(), None);
}

pub(crate) fn follow_up(key: &str, id: &str, at: EpochMillis) -> FollowUp {
    FollowUp {
        id: FollowUpId::parse(id).unwrap(),
        key: ProcessQueryKey::parse(key).unwrap(),
        at,
        action: FollowUpAction::Summary,
        state: FollowUpState::Pending,
        by: Some(uid("alice")),
        lang: Lang::Zh,
        created_at: 1,
        changed_at: 1,
        note: None,
    }
}

fn change(from: FollowUpState, to: FollowUpState, now: EpochMillis) -> StateChange<'static> {
    StateChange {
        from,
        to,
        now,
        note: None,
    }
}

pub(crate) async fn follow_ups_are_stored_listed_and_claimed_once<S: Store>(s: &S) {
    use FollowUpState::*;
    let a = follow_up("k1", "fu-a", 2_000);
    let b = follow_up("k1", "fu-b", 1_000);
    let c = follow_up("k10", "fu-c", 1_500);
    s.add_follow_ups(&[a.clone(), b.clone(), c.clone()])
        .await
        .unwrap();
    // Adding again changes nothing (a retried add).
    let mut again = a.clone();
    again.at = 9;
    s.add_follow_ups(&[again]).await.unwrap();
    let k1 = ProcessQueryKey::parse("k1").unwrap();
    assert_eq!(s.follow_ups(&k1).await.unwrap(), [b.clone(), a.clone()]);
    // Work list: due ones, earliest first, bounded.
    let due = s.due_follow_ups(Pending, 1_999, 10).await.unwrap();
    assert_eq!(due, [b.clone(), c.clone()]);
    assert_eq!(
        s.due_follow_ups(Pending, 5_000, 1).await.unwrap(),
        std::slice::from_ref(&b)
    );
    assert!(s
        .due_follow_ups(Firing, 5_000, 10)
        .await
        .unwrap()
        .is_empty());
    // The claim: exactly one pending → firing.
    let claimed = s
        .set_follow_up_state(&k1, &b.id, change(Pending, Firing, 3_000))
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!((claimed.state, claimed.changed_at), (Firing, 3_000));
    assert_eq!(
        s.set_follow_up_state(&k1, &b.id, change(Pending, Firing, 3_001))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.due_follow_ups(Firing, 5_000, 10).await.unwrap(),
        [claimed]
    );
    assert_eq!(
        s.due_follow_ups(Pending, 5_000, 10).await.unwrap(),
        [c.clone(), a.clone()]
    );
    let fired = s
        .set_follow_up_state(
            &k1,
            &b.id,
            StateChange {
                from: Firing,
                to: Fired,
                now: 3_002,
                note: Some("late"),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fired.note.as_deref(), Some("late"));
    assert!(s
        .due_follow_ups(Firing, 5_000, 10)
        .await
        .unwrap()
        .is_empty());
    // Cancel; an unknown id is None.
    assert!(s
        .set_follow_up_state(&k1, &a.id, change(Pending, Cancelled, 3_003))
        .await
        .unwrap()
        .is_some());
    let unknown = FollowUpId::parse("fu-x").unwrap();
    assert_eq!(
        s.set_follow_up_state(&k1, &unknown, change(Pending, Cancelled, 1))
            .await
            .unwrap(),
        None
    );
    let states: Vec<_> = s
        .follow_ups(&k1)
        .await
        .unwrap()
        .iter()
        .map(|f| f.state)
        .collect();
    assert_eq!(states, [Fired, Cancelled]);
    assert_eq!(s.due_follow_ups(Pending, 5_000, 10).await.unwrap(), [c]);
    // Retention takes follow-ups due before the notices' cut-off.
    s.prune_old(Cutoffs {
        notices_before: 1_600,
        names_before: 0,
        roster_before: 0,
    })
    .await
    .unwrap();
    assert_eq!(s.follow_ups(&k1).await.unwrap().len(), 1);
    assert!(s
        .due_follow_ups(Pending, 5_000, 10)
        .await
        .unwrap()
        .is_empty());
}

pub(crate) async fn concurrent_follow_up_claims_have_one_winner<S: Store>(s: Arc<S>) {
    let f = follow_up("k1", "fu-a", 1_000);
    s.add_follow_ups(std::slice::from_ref(&f)).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (s, f) = (s.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            s.set_follow_up_state(
                &f.key,
                &f.id,
                change(FollowUpState::Pending, FollowUpState::Firing, i),
            )
            .await
            .unwrap()
            .is_some()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn link_key_is_set_once() {
                let (_guard, s) = $make;
                super::link_key_is_set_once(&s).await;
            }
            #[tokio::test]
            async fn follow_ups_are_stored_listed_and_claimed_once() {
                let (_guard, s) = $make;
                super::follow_ups_are_stored_listed_and_claimed_once(&s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_follow_up_claims_have_one_winner() {
                let (_guard, s) = $make;
                super::concurrent_follow_up_claims_have_one_winner(std::sync::Arc::new(s)).await;
            }
            #[tokio::test]
            async fn group_titles() {
                let (_guard, s) = $make;
                super::group_titles(&s).await;
            }
            #[tokio::test]
            async fn record_and_get() {
                let (_guard, s) = $make;
                super::record_and_get(&s).await;
            }
            #[tokio::test]
            async fn list_newest_first_with_limit() {
                let (_guard, s) = $make;
                super::list_newest_first_with_limit(&s).await;
            }
            #[tokio::test]
            async fn groups_with_prefix_ids_do_not_leak() {
                let (_guard, s) = $make;
                super::groups_with_prefix_ids_do_not_leak(&s).await;
            }
            #[tokio::test]
            async fn last_notice_by_author() {
                let (_guard, s) = $make;
                super::last_notice_by_author(&s).await;
            }
            #[tokio::test]
            async fn re_record_overwrites_without_stale_entries() {
                let (_guard, s) = $make;
                super::re_record_overwrites_without_stale_entries(&s).await;
            }
            #[tokio::test]
            async fn claim_lifecycle() {
                let (_guard, s) = $make;
                super::claim_lifecycle(&s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_claims_have_one_winner() {
                let (_guard, s) = $make;
                super::concurrent_claims_have_one_winner(std::sync::Arc::new(s)).await;
            }
            #[tokio::test]
            async fn prune_removes_every_old_mark_and_keeps_recent() {
                let (_guard, s) = $make;
                super::prune_removes_every_old_mark_and_keeps_recent(&s).await;
            }
            #[tokio::test]
            async fn cached_roster_is_kept_per_group_and_replaced() {
                let (_guard, s) = $make;
                super::cached_roster_is_kept_per_group_and_replaced(&s).await;
            }
            #[tokio::test]
            async fn names_freshness() {
                let (_guard, s) = $make;
                super::names_freshness(&s).await;
            }
            #[tokio::test]
            async fn size_does_not_shrink_as_data_is_added() {
                let (_guard, s) = $make;
                super::size_does_not_shrink_as_data_is_added(&s).await;
            }
            #[tokio::test]
            async fn a_signature_allows_a_bounded_number_of_messages() {
                let (_guard, s) = $make;
                super::a_signature_allows_a_bounded_number_of_messages(&s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn racing_messages_never_exceed_a_signatures_limit() {
                let (_guard, s) = $make;
                super::racing_messages_never_exceed_a_signatures_limit(std::sync::Arc::new(s))
                    .await;
            }
            #[tokio::test]
            async fn signature_records_expire_with_the_marks() {
                let (_guard, s) = $make;
                super::signature_records_expire_with_the_marks(&s).await;
            }
            #[tokio::test]
            async fn callback_names_never_override_api_names() {
                let (_guard, s) = $make;
                super::callback_names_never_override_api_names(&s).await;
            }
            #[tokio::test]
            async fn reminders_in_time_order_per_notice() {
                let (_guard, s) = $make;
                super::reminders_in_time_order_per_notice(&s).await;
            }
            #[tokio::test]
            async fn recall_mark_keeps_the_first_time() {
                let (_guard, s) = $make;
                super::recall_mark_keeps_the_first_time(&s).await;
            }
            #[tokio::test]
            async fn reads_merge_by_reader() {
                let (_guard, s) = $make;
                super::reads_merge_by_reader(&s).await;
            }
            #[tokio::test]
            async fn recall_reconcile_and_trust() {
                let (_guard, s) = $make;
                super::recall_reconcile_and_trust(&s).await;
            }
            #[tokio::test]
            async fn sends_are_reserved_once_per_key() {
                let (_guard, s) = $make;
                super::sends_are_reserved_once_per_key(&s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn concurrent_sends_have_one_winner() {
                let (_guard, s) = $make;
                super::concurrent_sends_have_one_winner(std::sync::Arc::new(s)).await;
            }
            #[tokio::test]
            async fn probe_write_succeeds() {
                let (_guard, s) = $make;
                super::probe_write_succeeds(&s).await;
            }
            #[tokio::test]
            async fn prune_old_removes_only_what_is_older() {
                let (_guard, s) = $make;
                super::prune_old_removes_only_what_is_older(&s).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn call_ledger_adds_per_api_and_month() {
                let (_guard, s) = $make;
                super::call_ledger_adds_per_api_and_month(std::sync::Arc::new(s)).await;
            }
            #[tokio::test]
            async fn pruning_a_notice_forgets_its_reads_reminders_and_marks() {
                let (_guard, s) = $make;
                super::pruning_a_notice_forgets_its_reads_reminders_and_marks(&s).await;
            }
            #[tokio::test]
            async fn learned_roster() {
                let (_guard, s) = $make;
                super::learned_roster(&s).await;
            }
        }
    };
}

conformance!(memory, ((), super::super::memory::MemoryStore::new()));

conformance!(sled, {
    let dir = tempfile::tempdir().unwrap();
    let store = super::super::sled_store::SledStore::open(dir.path()).unwrap();
    (dir, store)
});

// PostgreSQL: a fresh database per case on the test process's throwaway
// cluster (`pg_test_cluster`); skipped with one printed line where
// PostgreSQL is not installed (unless READBOT_REQUIRE_POSTGRES=1).
conformance!(postgres, {
    let Some(config) = super::super::pg_test_cluster::fresh_database().await else {
        return;
    };
    let store = super::super::postgres::PgStore::connect(&config)
        .await
        .unwrap();
    ((), store)
});
