//! The notice page behind the summary's "Full list" link: every name, read
//! times and their source, reminders, a read-progress chart, and exports.
//!
//! A page reads through the same single-flight receipts cache as a summary
//! (`Bot::collect`), so a page view never costs more DingTalk calls than a
//! summary: 50 people opening the page at once share one pass. Links are
//! signed capabilities ([`super::link`]); without a public URL
//! ([`crate::config::WebConfig::public_url`]) none are minted.

use super::link::{LinkError, LinkSigner, LinkTarget, OpenedLink};
use super::{receipts, sentences, summary, Bot, BotError};
use crate::config::ReplyTimeZone;
use crate::domain::{
    now_millis, EpochMillis, FollowUp, FollowUpState, Lang, Member, Notice, ProcessQueryKey,
    Receipts, UserId,
};
use crate::render::chart::{progress_svg, ChartInput};
use crate::render::export::ExportRow;
use crate::render::view::{
    FollowUpView, LinkErrorView, NoticePageView, PersonView, ReaderView, ReminderView,
};
use std::collections::HashMap;
use std::time::Duration;

/// Longest search text used (longer input is cut).
const MAX_QUERY_CHARS: usize = 100;

/// The pages' public address and the signer of their links.
pub struct WebLinks {
    /// The public URL without a trailing `/`.
    base: String,
    signer: LinkSigner,
    ttl: Duration,
}

impl std::fmt::Debug for WebLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebLinks")
            .field("base", &self.base)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl WebLinks {
    /// Links under `public_url` (which may carry a path prefix), signed with
    /// `key`, valid for `ttl`.
    pub fn new(public_url: &url::Url, key: &[u8], ttl: Duration) -> Self {
        Self {
            base: public_url.as_str().trim_end_matches('/').to_owned(),
            signer: LinkSigner::new(key),
            ttl,
        }
    }

    /// A link to `target` valid for the TTL from `now`.
    pub(super) fn mint(&self, target: &LinkTarget, now: EpochMillis) -> PageLink {
        let ttl = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        self.mint_until(target, now.saturating_add(ttl))
    }

    /// A link to `target` valid until `expires_at`.
    pub(super) fn mint_until(&self, target: &LinkTarget, expires_at: EpochMillis) -> PageLink {
        let token = self.signer.sign(target, expires_at);
        let path = match target {
            LinkTarget::Notice(_) => "n",
            LinkTarget::Group(_) => "g",
        };
        PageLink {
            url: format!("{}/{path}/{token}", self.base),
            expires_at,
        }
    }
}

/// A minted page link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PageLink {
    /// The page's address (`{public_url}/n/{token}`).
    pub url: String,
    /// When it stops working (epoch ms).
    pub expires_at: EpochMillis,
}

/// What a page view asks for besides the notice.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    /// The link's token (the exports are relative to it).
    pub token: &'a str,
    /// The search text (`?q=`), possibly empty.
    pub query: &'a str,
    /// The page's language.
    pub lang: Lang,
    /// The Content-Security-Policy nonce of this response.
    pub nonce: &'a str,
    /// When the link expires.
    pub expires_at: EpochMillis,
}

impl Bot {
    /// Turns on page links (once; later calls change nothing). Returns
    /// false when they were already on.
    pub fn set_web(&self, links: WebLinks) -> bool {
        self.inner.web.set(links).is_ok()
    }

    /// True when a public URL is set: links are minted and pages served.
    pub fn pages_enabled(&self) -> bool {
        self.inner.web.get().is_some()
    }

    /// What `token` opens, if it is a genuine, unexpired link.
    pub fn open_link(&self, token: &str) -> Result<OpenedLink, LinkError> {
        match self.inner.web.get() {
            Some(web) => web.signer.verify(token, now_millis()),
            None => Err(LinkError::Invalid),
        }
    }

    /// Mints a link to the page of the recorded notice `key`; `None` when
    /// pages are off (no public URL).
    pub async fn mint_notice_link(
        &self,
        key: &ProcessQueryKey,
    ) -> Result<Option<PageLink>, BotError> {
        let Some(web) = self.inner.web.get() else {
            return Ok(None);
        };
        self.store()
            .notice(key)
            .await?
            .ok_or(BotError::NoticeNotFound)?;
        Ok(Some(
            web.mint(&LinkTarget::Notice(key.clone()), now_millis()),
        ))
    }

    /// The page link a summary of `key` carries, when pages are on.
    pub(super) fn full_list_url(&self, key: &ProcessQueryKey) -> Option<String> {
        let web = self.inner.web.get()?;
        Some(web.mint(&LinkTarget::Notice(key.clone()), now_millis()).url)
    }

    async fn page_data(&self, key: &ProcessQueryKey) -> Result<(Notice, Receipts), BotError> {
        let notice = self
            .store()
            .notice(key)
            .await?
            .ok_or(BotError::NoticeNotFound)?;
        let started = std::time::Instant::now();
        let r = self.collect(&notice, None).await;
        let outcome = if r.is_ok() { "ok" } else { "error" };
        crate::metrics::summary("page", outcome, Some(started.elapsed()));
        Ok((notice, std::sync::Arc::unwrap_or_clone(r?)))
    }

    /// The notice page of `key`, rendered (`notice.<lang>.html.j2`).
    pub async fn notice_page(
        &self,
        key: &ProcessQueryKey,
        req: PageRequest<'_>,
    ) -> Result<String, BotError> {
        let (notice, r) = self.page_data(key).await?;
        let reminders = self.store().reminders(key).await?;
        let recalled = self.store().recalled_at(key).await?;
        let tz = &self.deps().cfg.timezone;
        let query: String = req.query.trim().chars().take(MAX_QUERY_CHARS).collect();
        let needle = query.to_lowercase();
        let matches = |name: &str, id: &str| {
            needle.is_empty()
                || name.to_lowercase().contains(&needle)
                || id.to_lowercase().contains(&needle)
        };
        let unread = r
            .unread
            .iter()
            .map(|m| PersonView {
                name: shown_name(m).to_owned(),
                user_id: m.user_id.as_str().to_owned(),
            })
            .filter(|p| matches(&p.name, &p.user_id))
            .collect();
        let read = readers(&r, tz)
            .into_iter()
            .filter(|p| matches(&p.name, &p.user_id))
            .collect();
        let percent = percent(&r);
        let follow_ups: Vec<FollowUp> = {
            let mut f: Vec<FollowUp> = self
                .store()
                .follow_ups(key)
                .await?
                .into_iter()
                .filter(|f| matches!(f.state, FollowUpState::Pending | FollowUpState::Firing))
                .collect();
            f.sort_by_key(|f| f.at);
            f
        };
        let by_ids = reminders
            .iter()
            .filter_map(|m| m.by.as_ref())
            .chain(follow_ups.iter().filter_map(|f| f.by.as_ref()))
            .chain(notice.author.as_ref());
        let names = self.names_of(by_ids.map(|u| (u, Some(&r)))).await?;
        let name_of = |u: &Option<UserId>| {
            u.as_ref()
                .map(|u| {
                    names
                        .get(u)
                        .cloned()
                        .unwrap_or_else(|| u.as_str().to_owned())
                })
                .unwrap_or_default()
        };
        let view = NoticePageView {
            title: notice.title.clone(),
            // The name DingTalk gave with the notice, else the member
            // list's or name cache's (as for reminders), else the id.
            author: notice
                .author_name
                .clone()
                .unwrap_or_else(|| name_of(&notice.author)),
            sent_at: tz.format_minutes(notice.sent_at),
            timezone: tz.name().to_owned(),
            send_status: r.send_status.as_str().to_owned(),
            recalled_at: recalled.map(|t| tz.format_minutes(t)).unwrap_or_default(),
            read_count: r.read_count,
            unread_count: r.unread.len(),
            member_count: r.member_count,
            percent,
            query,
            unread,
            read,
            roster_source: r.roster_source.as_str().to_owned(),
            roster_complete: r.roster_complete,
            reads_from: r.reads_from.as_str().to_owned(),
            truncated: r.truncated,
            progress: summary::progress(&r),
            reminders: reminders
                .iter()
                .map(|m| ReminderView {
                    at: tz.format_minutes(m.at),
                    count: m.count,
                    via: m.via.as_str().to_owned(),
                    by: name_of(&m.by),
                })
                .collect(),
            follow_ups: follow_ups
                .iter()
                .map(|f| FollowUpView {
                    at: tz.format_minutes(f.at),
                    action: f.action.as_str().to_owned(),
                    state: f.state.as_str().to_owned(),
                    by: name_of(&f.by),
                })
                .collect(),
            chart_svg: chart(&r, req.lang),
            csv_url: format!("{}/csv", req.token),
            json_url: format!("{}/json", req.token),
            expires_at: tz.format_minutes(req.expires_at),
            nonce: req.nonce.to_owned(),
        };
        Ok(self.deps().renderer.render("notice", req.lang, &view)?)
    }

    /// The names of `ids`, each with the receipts of the notice it came
    /// with: from that notice's own members first (no look-up), then the
    /// name cache and DingTalk's user look-up, once for all, as a summary
    /// finds names ([`receipts::resolve_names`]); ids nobody names are left
    /// out. The notice page and the group page both name people this way.
    pub(super) async fn names_of<'a>(
        &self,
        ids: impl Iterator<Item = (&'a UserId, Option<&'a Receipts>)>,
    ) -> Result<HashMap<UserId, String>, BotError> {
        let mut known: HashMap<UserId, String> = HashMap::new();
        let mut wanted: Vec<UserId> = Vec::new();
        for (id, r) in ids {
            if known.contains_key(id) || wanted.contains(id) {
                continue;
            }
            let member = r.and_then(|r| r.read.iter().chain(&r.unread).find(|m| &m.user_id == id));
            match member.and_then(|m| m.name.as_deref()) {
                Some(n) if !n.trim().is_empty() => {
                    known.insert(id.clone(), n.to_owned());
                }
                _ => wanted.push(id.clone()),
            }
        }
        let d = self.deps();
        receipts::resolve_names(&d.api, &d.store, d.cfg.name_ttl, wanted, &mut known).await?;
        Ok(known)
    }

    /// One row per member of the notice `key` (unread first, then readers
    /// by read time), for the CSV and JSON exports.
    pub async fn notice_export(&self, key: &ProcessQueryKey) -> Result<Vec<ExportRow>, BotError> {
        let (_, r) = self.page_data(key).await?;
        let tz = &self.deps().cfg.timezone;
        let times: HashMap<&str, &crate::domain::ReadRecord> = r
            .read_times
            .iter()
            .map(|t| (t.user_id.as_str(), t))
            .collect();
        let mut rows: Vec<ExportRow> = r
            .unread
            .iter()
            .map(|m| ExportRow {
                user_id: m.user_id.as_str().to_owned(),
                name: shown_name(m).to_owned(),
                read: false,
                read_time: None,
                source: None,
            })
            .collect();
        for m in ordered_readers(&r) {
            let t = times.get(m.user_id.as_str());
            rows.push(ExportRow {
                user_id: m.user_id.as_str().to_owned(),
                name: shown_name(m).to_owned(),
                read: true,
                read_time: t.map(|t| tz.format_rfc3339(t.at)),
                source: t.map(|t| t.source.as_str().to_owned()),
            });
        }
        Ok(rows)
    }

    /// The 403 page of a refused link (`link_error.<lang>.html.j2`).
    pub fn link_error_page(&self, e: LinkError, lang: Lang) -> String {
        let view = LinkErrorView {
            expired: e == LinkError::Expired,
        };
        self.deps()
            .renderer
            .render("link_error", lang, &view)
            .unwrap_or_else(|_| e.to_string())
    }
}

/// `read_count / member_count` in percent, rounded down; 0 when the member
/// count is unknown.
pub(super) fn percent(r: &Receipts) -> u32 {
    r.read_count
        .min(r.member_count)
        .saturating_mul(100)
        .checked_div(r.member_count)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0)
}

/// A member's name, or their id when no name is known.
pub(super) fn shown_name(m: &Member) -> &str {
    match m.name.as_deref() {
        Some(n) if !n.trim().is_empty() => n,
        _ => m.user_id.as_str(),
    }
}

/// Readers by read time (those without a time last, by id).
fn ordered_readers(r: &Receipts) -> Vec<&Member> {
    let at: HashMap<&str, EpochMillis> = r
        .read_times
        .iter()
        .map(|t| (t.user_id.as_str(), t.at))
        .collect();
    let mut out: Vec<&Member> = r.read.iter().collect();
    out.sort_by_key(|m| {
        (
            at.get(m.user_id.as_str())
                .copied()
                .unwrap_or(EpochMillis::MAX),
            m.user_id.as_str(),
        )
    });
    out
}

fn readers(r: &Receipts, tz: &ReplyTimeZone) -> Vec<ReaderView> {
    let times: HashMap<&str, &crate::domain::ReadRecord> = r
        .read_times
        .iter()
        .map(|t| (t.user_id.as_str(), t))
        .collect();
    ordered_readers(r)
        .into_iter()
        .map(|m| {
            let t = times.get(m.user_id.as_str());
            ReaderView {
                name: shown_name(m).to_owned(),
                user_id: m.user_id.as_str().to_owned(),
                read_at: t.map(|t| tz.format_seconds(t.at)).unwrap_or_default(),
                source: t.map(|t| t.source.as_str().to_owned()).unwrap_or_default(),
            }
        })
        .collect()
}

/// The reads of `r` per interval since sending (the intervals of
/// [`summary::timeline`], from the stored read times of its readers): the
/// interval in seconds, the reads in each, and how many reads have a time.
pub(super) fn read_intervals(r: &Receipts) -> (u64, Vec<usize>, usize) {
    let readers: std::collections::HashSet<&str> =
        r.read.iter().map(|m| m.user_id.as_str()).collect();
    let reads: Vec<crate::domain::ReadRecord> = r
        .read_times
        .iter()
        .filter(|t| readers.contains(t.user_id.as_str()))
        .cloned()
        .collect();
    let t = summary::timeline(&reads, r.notice.sent_at);
    let counts: Vec<usize> = t.buckets.iter().map(|b| b.reads).collect();
    (t.interval_secs, counts, reads.len())
}

/// The time the chart of `counts` intervals of `interval_secs` spans, in words.
pub(super) fn chart_span(interval_secs: u64, counts: usize, lang: Lang) -> String {
    let span_secs = interval_secs.saturating_mul(u64::try_from(counts).unwrap_or(u64::MAX));
    sentences::span(span_secs.max(interval_secs), lang)
}

/// The read-progress chart of `r`.
fn chart(r: &Receipts, lang: Lang) -> String {
    let (interval_secs, counts, reads) = read_intervals(r);
    let span = chart_span(interval_secs, counts.len(), lang);
    let title = sentences::chart_title(lang);
    let desc = sentences::chart_desc(reads, r.member_count, &span, lang);
    let ceiling = sentences::chart_members(r.member_count, lang);
    progress_svg(&ChartInput {
        member_count: r.member_count,
        interval_secs,
        reads: &counts,
        title: &title,
        desc: &desc,
        ceiling_label: &ceiling,
        end_label: &span,
    })
}
