//! The group page behind the `list` reply's "All notices" link: the group's
//! recent notices (the `list` command's store query, `bot.list_limit`, at
//! most 50), each with read/total, a small read-progress chart and a link to
//! its own notice page.
//!
//! Each notice's counts come through `Bot::collect`, the summary's
//! single-flight receipts cache: a page of N notices costs at most the
//! DingTalk calls of N summaries, and many views at once share one pass. A
//! notice whose read data cannot be fetched shows a short reason instead of
//! failing the page.

use super::link::LinkTarget;
use super::page::{chart_span, percent, read_intervals, PageLink};
use super::{sentences, Bot, BotError};
use crate::domain::{now_millis, EpochMillis, Lang, Notice, OpenConversationId, Receipts};
use crate::render::chart::{sparkline_svg, SparkInput};
use crate::render::view::{GroupNoticeView, GroupPageView};
use futures_util::StreamExt as _;
use std::sync::Arc;

/// Notices of one group page whose read data is gathered at the same time.
const CONCURRENT_NOTICES: usize = 4;

/// What a group page view asks for besides the group.
#[derive(Debug, Clone, Copy)]
pub struct GroupPageRequest<'a> {
    /// The page's language.
    pub lang: Lang,
    /// The Content-Security-Policy nonce of this response.
    pub nonce: &'a str,
    /// When the group link expires (the notice links on the page expire
    /// with it).
    pub expires_at: EpochMillis,
}

impl Bot {
    /// Mints a link to the page of `group`; `None` when pages are off (no
    /// public URL). A group readbot knows nothing of (no notice recorded,
    /// no title seen) is [`BotError::GroupNotFound`].
    pub async fn mint_group_link(
        &self,
        group: &OpenConversationId,
    ) -> Result<Option<PageLink>, BotError> {
        let Some(web) = self.inner.web.get() else {
            return Ok(None);
        };
        let known = !self.store().notices_in_group(group, 1).await?.is_empty()
            || self.store().group_title(group).await?.is_some();
        if !known {
            return Err(BotError::GroupNotFound);
        }
        Ok(Some(
            web.mint(&LinkTarget::Group(group.clone()), now_millis()),
        ))
    }

    /// The group page link a `list` reply carries, when pages are on.
    pub(super) fn group_url(&self, group: &OpenConversationId) -> Option<String> {
        let web = self.inner.web.get()?;
        Some(
            web.mint(&LinkTarget::Group(group.clone()), now_millis())
                .url,
        )
    }

    /// The page of `group`, rendered (`group.<lang>.html.j2`).
    pub async fn group_page(
        &self,
        group: &OpenConversationId,
        req: GroupPageRequest<'_>,
    ) -> Result<String, BotError> {
        let limit = self.deps().cfg.list_limit;
        let notices = self.store().notices_in_group(group, limit).await?;
        // From an unsigned callback body: plain text for the page, shown
        // as the member typed it; the HTML template's auto-escape makes it
        // inert (markdown neutralising is for chat, ARCHITECTURE.md).
        let group_title = self.store().group_title(group).await?.unwrap_or_default();
        let gathered: Vec<(Notice, Result<Arc<Receipts>, BotError>)> =
            futures_util::stream::iter(notices)
                .map(|n| async move {
                    let started = std::time::Instant::now();
                    let r = self.collect(&n, None).await;
                    let outcome = if r.is_ok() { "ok" } else { "error" };
                    crate::metrics::summary("page", outcome, Some(started.elapsed()));
                    (n, r)
                })
                .buffered(CONCURRENT_NOTICES)
                .collect()
                .await;
        // Authors DingTalk named with the notice need no look-up; the rest
        // are named from their notice's members, else the name cache and
        // DingTalk (once for the whole page).
        let given = |n: &Notice, r: &Result<Arc<Receipts>, BotError>| {
            n.author_name
                .clone()
                .or_else(|| r.as_ref().ok().and_then(|r| r.notice.author_name.clone()))
        };
        let authors = self
            .names_of(
                gathered
                    .iter()
                    .filter(|(n, r)| given(n, r).is_none())
                    .filter_map(|(n, r)| {
                        let r = r.as_ref().ok().map(|r| r.as_ref());
                        n.author.as_ref().map(|a| (a, r))
                    }),
            )
            .await?;
        let tz = &self.deps().cfg.timezone;
        let rows = gathered
            .iter()
            .enumerate()
            .map(|(i, (n, r))| {
                let author = given(n, r)
                    .or_else(|| {
                        n.author.as_ref().map(|a| {
                            authors
                                .get(a)
                                .cloned()
                                .unwrap_or_else(|| a.as_str().to_owned())
                        })
                    })
                    .unwrap_or_default();
                let url = self.inner.web.get().map_or_else(String::new, |web| {
                    web.mint_until(&LinkTarget::Notice(n.key.clone()), req.expires_at)
                        .url
                });
                let mut row = GroupNoticeView {
                    title: n.title.clone(),
                    author,
                    sent_at: tz.format_minutes(n.sent_at),
                    send_status: String::new(),
                    read_count: 0,
                    member_count: 0,
                    percent: 0,
                    chart_svg: String::new(),
                    url,
                    error: String::new(),
                };
                match r {
                    Ok(r) => {
                        row.send_status = r.send_status.as_str().to_owned();
                        row.read_count = r.read_count;
                        row.member_count = r.member_count;
                        row.percent = percent(r);
                        row.chart_svg = spark(r, i.saturating_add(1), req.lang);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "group page: no read data for one notice");
                        row.error = reason(e, req.lang);
                    }
                }
                row
            })
            .collect();
        let view = GroupPageView {
            group_title,
            notices: rows,
            limit,
            timezone: tz.name().to_owned(),
            expires_at: tz.format_minutes(req.expires_at),
            nonce: req.nonce.to_owned(),
        };
        Ok(self.deps().renderer.render("group", req.lang, &view)?)
    }
}

/// The small chart of notice number `n` on the page.
fn spark(r: &Receipts, n: usize, lang: Lang) -> String {
    let (interval_secs, counts, reads) = read_intervals(r);
    let span = chart_span(interval_secs, counts.len(), lang);
    let title = sentences::chart_title(lang);
    let desc = sentences::chart_desc(reads, r.member_count, &span, lang);
    sparkline_svg(&SparkInput {
        id: &n.to_string(),
        member_count: r.member_count,
        reads: &counts,
        title: &title,
        desc: &desc,
    })
}

/// Why a notice's read data could not be fetched, in one sentence.
fn reason(e: &BotError, lang: Lang) -> String {
    match e {
        BotError::DingTalk(d) => sentences::dingtalk_error(d, lang),
        BotError::NoticeNotFound => sentences::page_notice_gone(lang),
        _ => sentences::internal_error(lang),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dingtalk::DingTalkError;

    #[test]
    fn a_reason_is_one_sentence_in_the_pages_language() {
        let en = reason(&BotError::DingTalk(DingTalkError::Timeout), Lang::En);
        let zh = reason(&BotError::DingTalk(DingTalkError::Timeout), Lang::Zh);
        assert!(!en.is_empty() && !zh.is_empty() && en != zh);
        assert_eq!(
            reason(&BotError::NoticeNotFound, Lang::En),
            sentences::page_notice_gone(Lang::En)
        );
        assert_eq!(
            reason(&BotError::SendPending, Lang::Zh),
            sentences::internal_error(Lang::Zh)
        );
    }
}
