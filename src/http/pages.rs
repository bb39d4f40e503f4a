//! The notice page and its exports, behind signed links (`bot::link`):
//! `GET /n/{token}` (HTML), `GET /n/{token}/csv`, `GET /n/{token}/json`;
//! and the group page `GET /g/{token}`.
//! Served only when a public URL is set. No bearer token: the link is the
//! capability; a tampered or expired one gets a plain 403 page saying which.
//!
//! Every answer carries a Content-Security-Policy that allows only the
//! page's own inline style and script (by a per-response nonce),
//! `Cache-Control: private, no-store`, `Referrer-Policy: no-referrer` and
//! `X-Robots-Tag: noindex`. Unlike the API, refusals here are small HTML
//! pages: a person reads them in a browser.

use super::extract::Path;
use super::AppState;
use crate::bot::group_page::GroupPageRequest;
use crate::bot::link::{LinkError, LinkTarget, OpenedLink};
use crate::bot::page::PageRequest;
use crate::bot::{sentences, BotError};
use crate::domain::{Lang, ProcessQueryKey};
use crate::render::export;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

/// A fresh CSP nonce (128 random bits), URL-safe base64: no `/`, `+` or
/// `=`, so the page's HTML escaping leaves it as it is.
fn nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The headers every page answer carries; `nonce` allows the page's own
/// `<style>` and `<script>`, nothing else (none for the error pages).
fn with_headers(mut resp: Response, content_type: &'static str, nonce: Option<&str>) -> Response {
    let csp = match nonce {
        Some(n) => format!(
            "default-src 'none'; style-src 'nonce-{n}'; script-src 'nonce-{n}'; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        ),
        None => "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
            .to_owned(),
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

const HTML: &str = "text/html; charset=utf-8";

/// The page's language: `?lang=en|zh`, else the browser's first choice
/// (`zh…` → Chinese), else English.
fn language(query: &[(String, String)], headers: &HeaderMap) -> Lang {
    match param(query, "lang").as_deref() {
        Some("zh") => return Lang::Zh,
        Some("en") => return Lang::En,
        _ => {}
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.trim_start().to_ascii_lowercase().starts_with("zh") {
        Lang::Zh
    } else {
        Lang::En
    }
}

fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .take(16)
        .collect()
}

fn param(query: &[(String, String)], name: &str) -> Option<String> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A small page saying one sentence.
fn sentence_page(status: StatusCode, sentence: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>readbot</title></head>\
         <body><p>{}</p></body></html>",
        escape(sentence)
    );
    with_headers((status, body).into_response(), HTML, None)
}

/// A failure while reading the notice, as a page.
fn bot_error_page(e: BotError, lang: Lang) -> Response {
    match e {
        BotError::NoticeNotFound => {
            sentence_page(StatusCode::NOT_FOUND, &sentences::page_notice_gone(lang))
        }
        BotError::DingTalk(d) => {
            tracing::warn!(error = %d, "notice page: DingTalk refused");
            sentence_page(
                StatusCode::BAD_GATEWAY,
                &sentences::dingtalk_error(&d, lang),
            )
        }
        other => {
            tracing::warn!(error = %other, "notice page failed");
            sentence_page(
                StatusCode::SERVICE_UNAVAILABLE,
                &sentences::internal_error(lang),
            )
        }
    }
}

/// Why a page could not be shown.
enum Refusal {
    /// The link is expired or invalid: 403.
    Link(LinkError),
    /// Reading the notice failed.
    Bot(BotError),
}

impl Refusal {
    fn respond(self, state: &AppState, lang: Lang) -> Response {
        match self {
            Refusal::Link(e) => {
                let body = state.bot.link_error_page(e, lang);
                with_headers((StatusCode::FORBIDDEN, body).into_response(), HTML, None)
            }
            Refusal::Bot(e) => bot_error_page(e, lang),
        }
    }
}

/// The notice a token opens.
fn open_notice(state: &AppState, token: &str) -> Result<(ProcessQueryKey, OpenedLink), Refusal> {
    let opened = state.bot.open_link(token).map_err(Refusal::Link)?;
    match &opened.target {
        LinkTarget::Notice(key) => Ok((key.clone(), opened.clone())),
        LinkTarget::Group(_) => Err(Refusal::Link(LinkError::Invalid)),
    }
}

/// `GET /n/{token}`: the notice page (`?q=` filters both lists).
pub(super) async fn notice(
    State(state): State<AppState>,
    Path(token): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = parse_query(raw.as_deref());
    let lang = language(&query, &headers);
    let (key, opened) = match open_notice(&state, &token) {
        Ok(o) => o,
        Err(refusal) => return refusal.respond(&state, lang),
    };
    let nonce = nonce();
    let q = param(&query, "q").unwrap_or_default();
    let req = PageRequest {
        token: &token,
        query: &q,
        lang,
        nonce: &nonce,
        expires_at: opened.expires_at,
    };
    match state.bot.notice_page(&key, req).await {
        Ok(html) => with_headers(html.into_response(), HTML, Some(&nonce)),
        Err(e) => bot_error_page(e, lang),
    }
}

/// `GET /g/{token}`: the group page (a group token only: a notice's token
/// is refused as invalid here, and a group's on `/n/`).
pub(super) async fn group(
    State(state): State<AppState>,
    Path(token): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query = parse_query(raw.as_deref());
    let lang = language(&query, &headers);
    let opened = match state.bot.open_link(&token) {
        Ok(o) => o,
        Err(e) => return Refusal::Link(e).respond(&state, lang),
    };
    let LinkTarget::Group(group) = &opened.target else {
        return Refusal::Link(LinkError::Invalid).respond(&state, lang);
    };
    let nonce = nonce();
    let req = GroupPageRequest {
        lang,
        nonce: &nonce,
        expires_at: opened.expires_at,
    };
    match state.bot.group_page(group, req).await {
        Ok(html) => with_headers(html.into_response(), HTML, Some(&nonce)),
        Err(e) => bot_error_page(e, lang),
    }
}

async fn export_rows(state: &AppState, token: &str) -> Result<Vec<export::ExportRow>, Refusal> {
    let (key, _) = open_notice(state, token)?;
    state.bot.notice_export(&key).await.map_err(Refusal::Bot)
}

/// `GET /n/{token}/csv`: one row per member, UTF-8 with a BOM.
pub(super) async fn csv(
    State(state): State<AppState>,
    Path(token): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    match export_rows(&state, &token).await {
        Ok(rows) => {
            let mut resp = with_headers(
                export::csv(&rows).into_response(),
                "text/csv; charset=utf-8",
                None,
            );
            resp.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"readbot-notice.csv\""),
            );
            resp
        }
        Err(refusal) => refusal.respond(&state, language(&parse_query(raw.as_deref()), &headers)),
    }
}

/// `GET /n/{token}/json`: the same rows as JSON (`{"members": [...]}`).
pub(super) async fn json(
    State(state): State<AppState>,
    Path(token): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    match export_rows(&state, &token).await {
        Ok(rows) => with_headers(
            axum::Json(serde_json::json!({ "members": rows })).into_response(),
            "application/json",
            None,
        ),
        Err(refusal) => refusal.respond(&state, language(&parse_query(raw.as_deref()), &headers)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_follows_the_parameter_then_the_browser() {
        let mut h = HeaderMap::new();
        assert_eq!(language(&[], &h), Lang::En);
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("zh-CN,zh;q=0.9"),
        );
        assert_eq!(language(&[], &h), Lang::Zh);
        let en = [("lang".to_string(), "en".to_string())];
        assert_eq!(language(&en, &h), Lang::En);
    }

    #[test]
    fn error_pages_escape_their_sentence_and_carry_the_headers() {
        let resp = sentence_page(StatusCode::NOT_FOUND, "<b>x</b>");
        let h = resp.headers();
        assert_eq!(h[header::CACHE_CONTROL], "private, no-store");
        assert_eq!(h[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(h["x-robots-tag"], "noindex");
        assert!(h[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'"));
        assert_eq!(escape("<b>\"&"), "&lt;b&gt;&quot;&amp;");
    }

    #[test]
    fn nonces_are_fresh_and_need_no_escaping() {
        let (a, b) = (nonce(), nonce());
        assert_ne!(a, b);
        for n in [a, b] {
            assert_eq!(n.len(), 22);
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{n}"
            );
        }
    }
}
