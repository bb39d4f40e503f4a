//! Gathering the read state of one notice: read-query pages, the roster and
//! names, combined into [`Receipts`].
//!
//! The query pages and the roster are fetched concurrently; names come from
//! the roster answer, then the name cache, then DingTalk (only for unknown ids).

use super::BotError;
use crate::config::BotConfig;
use crate::dingtalk::{DingTalkApi, ReadQuery, RosterQuery};
use crate::domain::{now_millis, Member, Notice, Receipts, RobotCode, RosterSource, UserId};
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// What receipts need besides the notice.
pub struct ReceiptsDeps<'a> {
    /// DingTalk.
    pub api: &'a Arc<dyn DingTalkApi>,
    /// The store.
    pub store: &'a Arc<dyn Store>,
    /// Bot settings.
    pub cfg: &'a BotConfig,
    /// `coolAppCode` for scene groups.
    pub cool_app_code: Option<&'a str>,
    /// The robot itself is never counted as a member.
    pub robot_code: &'a RobotCode,
}

struct RosterAnswer {
    members: Vec<Member>,
    source: RosterSource,
    complete: bool,
}

/// Collects the receipts of `notice`; `asker` (when known) is used as the
/// operator for member-list APIs that need one.
pub async fn collect(
    deps: &ReceiptsDeps<'_>,
    notice: &Notice,
    asker: Option<&UserId>,
) -> Result<Receipts, BotError> {
    let query = ReadQuery {
        key: notice.key.clone(),
        group: notice.group.clone(),
        robot_code: notice.robot_code.clone(),
        sent_at: notice.sent_at,
    };
    let (state, roster) = tokio::join!(deps.api.read_state(&query), roster(deps, notice, asker));
    let state = state?;
    let roster = roster?;

    let robot = deps.robot_code.as_str();
    let readers: Vec<UserId> = state
        .readers
        .iter()
        .filter(|u| u.as_str() != robot)
        .cloned()
        .collect();
    let mut members: Vec<Member> = roster
        .members
        .into_iter()
        .filter(|m| m.user_id.as_str() != robot)
        .collect();
    if roster.source == RosterSource::Learned {
        // Whoever read it is evidently in the group, and so is the author.
        let mut have: HashSet<UserId> = members.iter().map(|m| m.user_id.clone()).collect();
        for u in readers.iter().chain(notice.author.iter()) {
            if have.insert(u.clone()) {
                members.push(Member {
                    user_id: u.clone(),
                    name: None,
                });
            }
        }
        members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    }

    // Learned roster: everyone seen reading or listed.
    let mut seen: Vec<UserId> = readers.clone();
    if roster.source != RosterSource::Learned {
        seen.extend(members.iter().map(|m| m.user_id.clone()));
    }
    if !seen.is_empty() {
        deps.store
            .remember_members(&notice.group, &seen, now_millis())
            .await?;
    }

    let reader_set: HashSet<&UserId> = readers.iter().collect();
    let member_set: HashSet<&UserId> = members.iter().map(|m| &m.user_id).collect();
    let mut known: HashMap<UserId, String> = members
        .iter()
        .filter_map(|m| m.name.clone().map(|n| (m.user_id.clone(), n)))
        .collect();

    // Names: cache first, then DingTalk for the rest.
    let mut wanted: Vec<UserId> = members
        .iter()
        .map(|m| m.user_id.clone())
        .chain(readers.iter().cloned())
        .chain(
            notice
                .author
                .iter()
                .filter(|_| notice.author_name.is_none())
                .cloned(),
        )
        .filter(|u| !known.contains_key(u))
        .collect();
    wanted.sort();
    wanted.dedup();
    if !known.is_empty() {
        let fresh: Vec<(UserId, String)> =
            known.iter().map(|(u, n)| (u.clone(), n.clone())).collect();
        deps.store.cache_names(&fresh, now_millis()).await?;
    }
    if !wanted.is_empty() {
        let ttl_ms = i64::try_from(deps.cfg.name_ttl.as_millis()).unwrap_or(i64::MAX);
        let cached = deps
            .store
            .cached_names(&wanted, now_millis().saturating_sub(ttl_ms))
            .await?;
        for (u, n) in cached {
            known.insert(u, n);
        }
        let missing: Vec<UserId> = wanted
            .into_iter()
            .filter(|u| !known.contains_key(u))
            .collect();
        if !missing.is_empty() {
            match deps.api.user_names(&missing).await {
                Ok(found) => {
                    if !found.is_empty() {
                        deps.store.cache_names(&found, now_millis()).await?;
                    }
                    known.extend(found);
                }
                // Names are a nicety: show ids rather than failing the summary.
                Err(e) => tracing::warn!(error = %e, "name look-up failed; showing user ids"),
            }
        }
    }
    let person = |u: &UserId| Member {
        user_id: u.clone(),
        name: known.get(u).cloned(),
    };

    let has_roster = !members.is_empty();
    let read: Vec<Member> = readers.iter().map(person).collect();
    let unread: Vec<Member> = members
        .iter()
        .filter(|m| !reader_set.contains(&m.user_id))
        .map(|m| person(&m.user_id))
        .collect();
    let member_count = if has_roster { members.len() } else { 0 };
    let read_count = if has_roster {
        readers.iter().filter(|u| member_set.contains(u)).count()
    } else {
        readers.len()
    };
    let mut notice = notice.clone();
    if notice.author_name.is_none() {
        notice.author_name = notice.author.as_ref().and_then(|a| known.get(a).cloned());
    }
    Ok(Receipts {
        notice,
        send_status: state.send_status,
        read,
        unread,
        read_count,
        member_count,
        roster_source: roster.source,
        roster_complete: roster.complete && has_roster,
        pages: state.pages,
        truncated: state.truncated,
    })
}

/// Tries the configured roster sources in order; the learned roster always answers.
async fn roster(
    deps: &ReceiptsDeps<'_>,
    notice: &Notice,
    asker: Option<&UserId>,
) -> Result<RosterAnswer, BotError> {
    for source in &deps.cfg.roster_sources {
        let query = match source {
            RosterSource::InnerGroup => {
                let Some(operator) = asker.or(notice.author.as_ref()) else {
                    continue;
                };
                RosterQuery::InnerGroup {
                    group: notice.group.clone(),
                    operator: operator.clone(),
                }
            }
            RosterSource::SceneGroup => RosterQuery::SceneGroup {
                group: notice.group.clone(),
                cool_app_code: deps.cool_app_code.map(str::to_owned),
            },
            RosterSource::Learned => {
                let users = deps.store.learned_members(&notice.group).await?;
                return Ok(RosterAnswer {
                    members: users
                        .into_iter()
                        .map(|user_id| Member {
                            user_id,
                            name: None,
                        })
                        .collect(),
                    source: RosterSource::Learned,
                    complete: false,
                });
            }
        };
        match deps.api.roster(&query).await {
            Ok(r) if !r.members.is_empty() => {
                return Ok(RosterAnswer {
                    members: r.members,
                    source: *source,
                    complete: r.complete,
                })
            }
            Ok(_) => tracing::info!(
                source = source.as_str(),
                "roster source returned no members"
            ),
            Err(e) => {
                tracing::info!(source = source.as_str(), error = %e, "roster source unavailable")
            }
        }
    }
    // Nothing configured answered: fall back to what readbot has seen.
    let users = deps.store.learned_members(&notice.group).await?;
    Ok(RosterAnswer {
        members: users
            .into_iter()
            .map(|user_id| Member {
                user_id,
                name: None,
            })
            .collect(),
        source: RosterSource::Learned,
        complete: false,
    })
}
