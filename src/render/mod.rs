//! Template rendering (minijinja): embedded defaults from `templates/`,
//! overridable file by file from a folder named in config.
//!
//! Templates are `<name>.<lang>.md.j2` (DingTalk-flavoured markdown) for
//! every name in [`template_names`] and every [`Lang`]. The defaults are
//! compiled into the binary; [`Renderer::new`] with a folder replaces any
//! default whose file is present there. Every template is checked at
//! start-up: syntax errors and unknown variables in an override are reported
//! with the file's path before the first reply is sent.
//!
//! Settings: auto-escaping off (markdown, not HTML), `trim_blocks` and
//! `lstrip_blocks` on, strict undefined (a misspelt variable is an error).
//! Untrusted text reaches the templates already neutralised
//! ([`markdown::neutralise`], also the `neutralise` filter).

pub mod chart;
pub mod export;
pub mod markdown;
mod samples;
pub mod view;

pub use markdown::neutralise;

use crate::domain::Lang;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use std::path::Path;

/// Template errors.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template is missing or invalid, or rendering failed.
    #[error("template {name}: {message}")]
    Template {
        /// Template file name (the full path for an override file).
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// One template: its name, its embedded default per language and the sample
/// contexts its start-up check and previews render. Adding a template is one
/// entry in [`TEMPLATES`] (plus its view model and files in `templates/`).
struct TemplateSpec {
    /// The name, without language and extension.
    name: &'static str,
    /// The format: `md` (chat markdown, no escaping) or `html` (the notice
    /// page, HTML auto-escape on).
    ext: &'static str,
    /// The embedded default of `<name>.en.<ext>.j2`.
    en: &'static str,
    /// The embedded default of `<name>.zh.<ext>.j2`.
    zh: &'static str,
    /// Labelled sample contexts, exercising the main branches.
    samples: fn() -> Vec<samples::Sample>,
}

impl TemplateSpec {
    /// The embedded default source in `lang`.
    fn source(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en,
            Lang::Zh => self.zh,
        }
    }
}

/// One [`TemplateSpec`]: `spec!("list", "md", samples::list)` embeds
/// `templates/list.en.md.j2` and `templates/list.zh.md.j2`.
macro_rules! spec {
    ($name:literal, $ext:literal, $samples:expr) => {
        TemplateSpec {
            name: $name,
            ext: $ext,
            en: include_str!(concat!("../../templates/", $name, ".en.", $ext, ".j2")),
            zh: include_str!(concat!("../../templates/", $name, ".zh.", $ext, ".j2")),
            samples: $samples,
        }
    };
}

/// Every template readbot renders.
const TEMPLATES: &[TemplateSpec] = &[
    spec!("summary", "md", samples::summary),
    spec!("list", "md", samples::list),
    spec!("help", "md", samples::help),
    spec!("error", "md", samples::error),
    spec!("notice", "html", samples::notice_page),
    spec!("group", "html", samples::group_page),
    spec!("link_error", "html", samples::link_error),
];

/// The template names, in the order of [`TEMPLATES`].
const NAMES: [&str; TEMPLATES.len()] = {
    let mut names = [""; TEMPLATES.len()];
    let mut i = 0;
    while i < TEMPLATES.len() {
        names[i] = TEMPLATES[i].name;
        i += 1;
    }
    names
};

/// Both languages, for iterating.
const LANGS: [Lang; 2] = [Lang::En, Lang::Zh];

/// The spec of template `name`.
fn spec(name: &str) -> Option<&'static TemplateSpec> {
    TEMPLATES.iter().find(|t| t.name == name)
}

/// The spec and language a file name `<name>.<lang>.<ext>.j2` stands for.
fn spec_of_file(file_name: &str) -> Option<(&'static TemplateSpec, Lang)> {
    let stem = file_name.strip_suffix(".j2")?;
    let (stem, ext) = stem.rsplit_once('.')?;
    let (name, code) = stem.rsplit_once('.')?;
    let lang = LANGS.into_iter().find(|l| l.code() == code)?;
    let spec = spec(name)?;
    (spec.ext == ext).then_some((spec, lang))
}

/// The template names (`summary`, `list`, `help`, `error`, and the pages
/// `notice`, `group`, `link_error`).
pub fn template_names() -> &'static [&'static str] {
    &NAMES
}

/// The file name of a template: `<name>.<lang>.md.j2` (chat) or
/// `<name>.<lang>.html.j2` (pages).
pub fn template_file_name(name: &str, lang: Lang) -> String {
    let ext = spec(name).map_or("md", |s| s.ext);
    format!("{name}.{}.{ext}.j2", lang.code())
}

/// The embedded default source of a template file, if it exists.
pub fn embedded_source(file_name: &str) -> Option<&'static str> {
    spec_of_file(file_name).map(|(spec, lang)| spec.source(lang))
}

fn environment() -> Result<Environment<'static>, RenderError> {
    let mut env = Environment::new();
    // Pages are HTML: every value is escaped unless a template marks it
    // `|safe` (only the chart, which readbot draws). Chat is markdown.
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html.j2") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Errors carry the failing expression's span (also in release builds),
    // so an undefined variable is named in the error.
    env.set_debug(true);
    env.add_filter("neutralise", |s: String| markdown::neutralise(&s));
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|e| RenderError::Template {
            name: "<syntax>".into(),
            message: e.to_string(),
        })?;
    env.set_syntax(syntax);
    Ok(env)
}

fn template_error(name: impl Into<String>, e: &minijinja::Error) -> RenderError {
    RenderError::Template {
        name: name.into(),
        message: error_message(e),
    }
}

/// minijinja's message, except that an undefined value names the expression
/// that produced it (`undefined variable "titel" (in summary.en.md.j2:3)`)
/// instead of minijinja's bare "undefined value".
fn error_message(e: &minijinja::Error) -> String {
    if e.kind() != minijinja::ErrorKind::UndefinedError {
        return e.to_string();
    }
    let expr = e
        .template_source()
        .zip(e.range())
        .and_then(|(src, range)| src.get(range))
        .map(str::trim)
        .filter(|x| !x.is_empty());
    let at = match (e.name(), e.line()) {
        (Some(name), Some(line)) => format!(" (in {name}:{line})"),
        (None, Some(line)) => format!(" (line {line})"),
        (_, None) => String::new(),
    };
    match expr {
        Some(expr) => format!(
            "undefined variable \"{expr}\"{at}: the template uses a name its context does not have (the variables are listed in templates/README.md)"
        ),
        None => e.to_string(),
    }
}

/// Renders a template source once, with the same settings as [`Renderer`]
/// (for previews and tests).
pub fn render_str<T: Serialize>(source: &str, ctx: &T) -> Result<String, RenderError> {
    let env = environment()?;
    env.render_str(source, Value::from(Serde(ctx)))
        .map_err(|e| template_error("<string>", &e))
}

/// One rendering of a template against one set of sample data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// What the sample data shows.
    pub sample: &'static str,
    /// The rendered reply (trailing whitespace trimmed, like a real reply).
    pub output: String,
}

/// Renders `source` as template `name` (`summary`, `list`, `help` or
/// `error`) against every built-in sample data set, with the settings
/// readbot uses (strict undefined, `trim_blocks`, `lstrip_blocks`, no
/// escaping). Errors name `shown` (e.g. the file path) and the line.
pub fn preview(name: &str, shown: &str, source: &str) -> Result<Vec<Preview>, RenderError> {
    let Some(spec) = spec(name) else {
        return Err(RenderError::Template {
            name: shown.to_owned(),
            message: format!("unknown template name {name:?} (expected one of {NAMES:?})"),
        });
    };
    let mut env = environment()?;
    env.add_template_owned(shown.to_owned(), source.to_owned())
        .map_err(|e| template_error(shown, &e))?;
    let template = env
        .get_template(shown)
        .map_err(|e| template_error(shown, &e))?;
    (spec.samples)()
        .into_iter()
        .map(|(sample, ctx)| {
            let output = template
                .render(ctx)
                .map_err(|e| template_error(shown, &e))?;
            Ok(Preview {
                sample,
                output: output.trim_end().to_owned(),
            })
        })
        .collect()
}

/// Renders `source` with a caller-supplied context (e.g. JSON from a file),
/// with the same settings as [`preview`].
pub fn preview_with(
    shown: &str,
    source: &str,
    ctx: &serde_json::Value,
) -> Result<String, RenderError> {
    let mut env = environment()?;
    env.add_template_owned(shown.to_owned(), source.to_owned())
        .map_err(|e| template_error(shown, &e))?;
    let template = env
        .get_template(shown)
        .map_err(|e| template_error(shown, &e))?;
    template
        .render(samples::v(ctx))
        .map(|out| out.trim_end().to_owned())
        .map_err(|e| template_error(shown, &e))
}

/// The template name a file name stands for: `summary.zh.md.j2` → `summary`.
pub fn name_of_file(file_name: &str) -> Option<&'static str> {
    spec_of_file(file_name).map(|(spec, _)| spec.name)
}

/// Renders the named templates.
pub struct Renderer {
    env: Environment<'static>,
    overridden: Vec<String>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("overridden", &self.overridden)
            .finish_non_exhaustive()
    }
}

impl Renderer {
    /// Loads embedded templates, then overrides from `dir` if given.
    ///
    /// Every `<name>.<lang>.md.j2` present in `dir` replaces the embedded
    /// one; missing files fall back to the embedded defaults. Fails, naming
    /// the file, when `dir` is not a folder, an override cannot be read, has
    /// a syntax error or fails to render sample data (e.g. a misspelt
    /// variable).
    pub fn new(dir: Option<&Path>) -> Result<Self, RenderError> {
        let mut env = environment()?;
        for spec in TEMPLATES {
            for lang in LANGS {
                let file = template_file_name(spec.name, lang);
                env.add_template_owned(file.clone(), spec.source(lang))
                    .map_err(|e| template_error(file, &e))?;
            }
        }
        let mut overridden = Vec::new();
        if let Some(dir) = dir {
            if !dir.is_dir() {
                return Err(RenderError::Template {
                    name: dir.display().to_string(),
                    message: "the template folder does not exist or is not a folder".into(),
                });
            }
            warn_unknown_files(dir);
            for spec in TEMPLATES {
                for lang in LANGS {
                    let file = template_file_name(spec.name, lang);
                    let path = dir.join(&file);
                    if !path.exists() {
                        continue;
                    }
                    let shown = path.display().to_string();
                    let source =
                        std::fs::read_to_string(&path).map_err(|e| RenderError::Template {
                            name: shown.clone(),
                            message: format!("cannot read the file: {e}"),
                        })?;
                    env.add_template_owned(file.clone(), source)
                        .map_err(|e| template_error(shown.clone(), &e))?;
                    overridden.push(file);
                }
            }
        }
        let renderer = Self { env, overridden };
        renderer.check(dir)?;
        Ok(renderer)
    }

    /// The template files that were replaced by files from the folder.
    pub fn overridden(&self) -> &[String] {
        &self.overridden
    }

    /// Renders `<name>.<lang>.md.j2` with `ctx` (trailing whitespace trimmed).
    pub fn render<T: Serialize>(
        &self,
        name: &str,
        lang: Lang,
        ctx: &T,
    ) -> Result<String, RenderError> {
        let file = template_file_name(name, lang);
        let template = self
            .env
            .get_template(&file)
            .map_err(|e| template_error(file.clone(), &e))?;
        template
            .render(Value::from(Serde(ctx)))
            .map(|out| out.trim_end().to_owned())
            .map_err(|e| template_error(file, &e))
    }

    /// Renders every template with sample contexts so that errors surface
    /// at start-up, naming the override file when there is one.
    fn check(&self, dir: Option<&Path>) -> Result<(), RenderError> {
        for spec in TEMPLATES {
            for lang in LANGS {
                for (_, ctx) in (spec.samples)() {
                    if let Err(e) = self.render(spec.name, lang, &ctx) {
                        let file = template_file_name(spec.name, lang);
                        let shown = match dir {
                            Some(d) if self.overridden.contains(&file) => {
                                d.join(&file).display().to_string()
                            }
                            _ => file,
                        };
                        let RenderError::Template { message, .. } = e;
                        return Err(RenderError::Template {
                            name: shown,
                            message,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

/// Logs files in the override folder that look like templates but match no
/// known name (a typo would otherwise be silently ignored).
fn warn_unknown_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.ends_with(".j2") && embedded_source(&file).is_none() {
            tracing::warn!(
                file = %entry.path().display(),
                "ignoring unknown template file (expected <name>.<lang>.md.j2 with name in {NAMES:?}, lang en or zh)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::samples::{person, sample_summary};
    use super::view::{ErrorView, HelpView, ListItemView, ListView, SummaryView};
    use super::*;

    fn renderer() -> Renderer {
        Renderer::new(None).unwrap()
    }

    fn summary() -> SummaryView {
        sample_summary()
    }

    /// The sample contexts of `name`, without their labels.
    fn samples(name: &str) -> Vec<Value> {
        (spec(name).unwrap().samples)()
            .into_iter()
            .map(|(_, ctx)| ctx)
            .collect()
    }

    #[test]
    fn pages_escape_every_value_but_the_chart_and_chat_escapes_nothing() {
        let r = renderer();
        let mut page = samples::sample_notice_page();
        page.title = "<script>alert(1)</script>".into();
        page.unread[0].name = "<img src=x onerror=alert(1)>".into();
        page.query = "\"><b>".into();
        for lang in LANGS {
            let html = r.render("notice", lang, &page).unwrap();
            assert!(!html.contains("<img src=x"), "{html}");
            assert!(
                html.contains("&lt;img src=x onerror=alert(1)&gt;"),
                "{html}"
            );
            assert!(!html.contains("<script>alert"), "{html}");
            assert!(!html.contains("\"><b>"), "{html}");
            assert!(
                html.contains(&page.chart_svg),
                "the chart is readbot's own SVG"
            );
            assert_eq!(
                html.matches(&format!("nonce=\"{}\"", page.nonce)).count(),
                2,
                "style and script carry the nonce"
            );
            assert!(
                !html.contains("style=\""),
                "no style attributes: the CSP refuses them"
            );
        }
        let mut summary = sample_summary();
        summary.title = "a < b".into();
        let md = r.render("summary", Lang::En, &summary).unwrap();
        assert!(md.contains("a < b"), "{md}");
        assert!(
            md.contains("[Full list](https://readbot.example.com/n/"),
            "{md}"
        );
        let zh = r.render("summary", Lang::Zh, &summary).unwrap();
        assert!(zh.contains("[完整名单](https://"), "{zh}");
        summary.full_list_url.clear();
        let md = r.render("summary", Lang::En, &summary).unwrap();
        assert!(!md.contains("Full list"), "{md}");
        for (expired, en) in [(true, "expired"), (false, "invalid")] {
            let html = r
                .render("link_error", Lang::En, &view::LinkErrorView { expired })
                .unwrap();
            assert!(html.contains(en), "{html}");
        }
    }

    #[test]
    fn the_group_page_escapes_titles_links_each_notice_and_names_failures() {
        let r = renderer();
        let mut page = samples::sample_group_page();
        page.group_title = "<img src=x onerror=alert(1)>".into();
        page.notices[0].title = "<script>alert(1)</script>".into();
        for lang in LANGS {
            let html = r.render("group", lang, &page).unwrap();
            assert!(
                !html.contains("<img src=x") && !html.contains("<script>alert"),
                "{html}"
            );
            assert!(
                html.contains("&lt;img src=x onerror=alert(1)&gt;"),
                "{html}"
            );
            // (minijinja's HTML escape writes `/` as `&#x2f;`: still the same URL.)
            let links = html.replace("&#x2f;", "/");
            assert_eq!(
                links
                    .matches("<a href=\"https://readbot.example.com/n/")
                    .count(),
                3
            );
            assert!(
                html.contains(&page.notices[0].chart_svg),
                "readbot's own SVG"
            );
            assert!(html.contains(&page.notices[2].error), "{html}");
            assert_eq!(
                html.matches(&format!("nonce=\"{}\"", page.nonce)).count(),
                1
            );
            assert!(
                !html.contains("style=\""),
                "no style attributes: the CSP refuses them"
            );
        }
        let en = r.render("group", Lang::En, &page).unwrap();
        assert!(en.contains("3 / 5 <span>(60%)</span>"), "{en}");
        assert!(
            en.contains("2 read <span>(member list unknown)</span>"),
            "{en}"
        );
        assert!(en.contains("Read data unavailable:"), "{en}");
        let zh = r.render("group", Lang::Zh, &page).unwrap();
        assert!(zh.contains("无法获取已读数据"), "{zh}");
    }

    #[test]
    fn the_notice_page_names_pending_follow_ups_and_who_reminded() {
        let page = samples::sample_notice_page();
        let en = renderer().render("notice", Lang::En, &page).unwrap();
        assert!(en.contains("Scheduled follow-ups"), "{en}");
        assert!(
            en.contains("2024-05-18 09:00 · direct messages to those who have not read it · scheduled by Li Lei"),
            "{en}"
        );
        assert!(
            en.contains("2024-05-18 17:00 · posts who has read it · being sent now</li>"),
            "{en}"
        );
        assert!(en.contains("asked by Li Lei"), "{en}");
        let zh = renderer().render("notice", Lang::Zh, &page).unwrap();
        assert!(
            zh.contains("已安排的跟进") && zh.contains("安排人 Li Lei"),
            "{zh}"
        );
        let none = view::NoticePageView {
            follow_ups: vec![],
            ..samples::sample_notice_page()
        };
        let en = renderer().render("notice", Lang::En, &none).unwrap();
        assert!(
            !en.contains("follow-ups"),
            "no section without follow-ups: {en}"
        );
    }

    #[test]
    fn templates_readme_documents_every_variable() {
        let readme = include_str!("../../templates/README.md");
        let item = ListItemView {
            n: 1,
            title: String::new(),
            author: String::new(),
            sent_at: String::new(),
        };
        let views = [
            serde_json::to_value(sample_summary()).unwrap(),
            serde_json::to_value(person("a", "b")).unwrap(),
            serde_json::to_value(ListView {
                notices: vec![],
                timezone: String::new(),
                group_url: String::new(),
            })
            .unwrap(),
            serde_json::to_value(item).unwrap(),
            serde_json::to_value(HelpView {
                unknown: String::new(),
            })
            .unwrap(),
            serde_json::to_value(ErrorView {
                message: String::new(),
            })
            .unwrap(),
            serde_json::to_value(samples::sample_notice_page()).unwrap(),
            serde_json::to_value(&samples::sample_notice_page().read[0]).unwrap(),
            serde_json::to_value(&samples::sample_notice_page().reminders[0]).unwrap(),
            serde_json::to_value(&samples::sample_notice_page().follow_ups[0]).unwrap(),
            serde_json::to_value(samples::sample_group_page()).unwrap(),
            serde_json::to_value(&samples::sample_group_page().notices[0]).unwrap(),
            serde_json::to_value(view::LinkErrorView { expired: true }).unwrap(),
        ];
        for view in views {
            for key in view.as_object().unwrap().keys() {
                assert!(
                    readme.contains(&format!("| `{key}`")),
                    "templates/README.md does not document {key}"
                );
            }
        }
    }

    #[test]
    fn preview_renders_every_sample_and_names_the_file_on_error() {
        for name in template_names() {
            for lang in LANGS {
                let file = template_file_name(name, lang);
                assert_eq!(name_of_file(&file), Some(*name));
                let src = embedded_source(&file).unwrap();
                let out = preview(name, &file, src).unwrap();
                assert_eq!(out.len(), samples(name).len());
                assert!(out
                    .iter()
                    .all(|p| !p.output.is_empty() && p.sample != "sample"));
            }
        }
        let err = preview("summary", "my/summary.en.md.j2", "{{ titel }}").unwrap_err();
        assert!(err.to_string().contains("my/summary.en.md.j2"), "{err}");
        assert!(preview("summary", "x", "{% if %}").is_err());
        assert!(preview("nope", "x", "").is_err());
        assert_eq!(name_of_file("summary.fr.md.j2"), None);
        assert_eq!(name_of_file("notes.en.md.j2"), None);
        let out = preview_with(
            "t",
            "{{ a }}-{{ b.c }}",
            &serde_json::json!({"a": 1, "b": {"c": "x"}}),
        );
        assert_eq!(out.unwrap(), "1-x");
    }

    #[test]
    fn every_embedded_template_exists_and_renders_samples() {
        let r = renderer();
        let on_disk: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/templates"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".j2"))
            .collect();
        assert_eq!(on_disk.len(), NAMES.len() * LANGS.len(), "{on_disk:?}");
        for file in &on_disk {
            assert!(embedded_source(file).is_some(), "{file} is not embedded");
        }
        for name in template_names() {
            for lang in LANGS {
                assert!(embedded_source(&template_file_name(name, lang)).is_some());
                for ctx in samples(name) {
                    let out = r.render(name, lang, &ctx).unwrap();
                    assert!(!out.trim().is_empty(), "{name}.{lang:?}");
                    assert!(!out.contains("{{") && !out.contains("{%"), "{out}");
                }
            }
        }
    }

    #[test]
    fn summary_en_with_cuts() {
        let out = renderer().render("summary", Lang::En, &summary()).unwrap();
        println!("{out}");
        assert!(out.starts_with("### Fire drill on Friday\n"), "{out}");
        assert!(out.contains("From **Li Lei**, sent 2024-05-17 09:30 (Asia/Shanghai)\n"));
        assert!(out.contains("Status: delivered"));
        assert!(out.contains("**Read: 3/7 (42%)**"));
        assert!(out.contains("**Unread (4):** Han Meimei, Wang Fang … and 2 more"));
        assert!(out.contains("**Read (3):** Li Lei, Zhang Wei, u3\n"));
        assert!(out.contains("Roster: group member list"));
        assert!(!out.contains("incomplete"));
        assert!(!out.contains("You have no notice here"));
        assert!(!out.contains("page limit"));
        assert!(!out.contains("\n\n\n"), "{out:?}");
    }

    #[test]
    fn summary_zh_with_cuts() {
        let out = renderer().render("summary", Lang::Zh, &summary()).unwrap();
        println!("{out}");
        assert!(out.contains("**Li Lei** 发送于 2024-05-17 09:30（Asia/Shanghai）\n"));
        assert!(out.contains("状态：已送达"));
        assert!(out.contains("**已读：3/7（42%）**"));
        assert!(out.contains("**未读（4）：**Han Meimei、Wang Fang … 等另外 2 人"));
        assert!(out.contains("成员名单来源：群成员列表"));
        assert!(!out.contains("\n\n\n"), "{out:?}");
    }

    #[test]
    fn summary_with_unknown_roster_shows_only_readers() {
        let ctx = SummaryView {
            member_count: 0,
            unread_count: 0,
            unread: vec![],
            percent: 0,
            read_more: 5,
            roster_source: "learned".into(),
            roster_complete: false,
            ..summary()
        };
        let en = renderer().render("summary", Lang::En, &ctx).unwrap();
        println!("{en}");
        assert!(en.contains("member list is unknown"));
        assert!(en.contains("**Read by 3:** Li Lei, Zhang Wei, u3 … and 5 more"));
        assert!(!en.contains("Unread"));
        assert!(!en.contains("/0"));
        let zh = renderer().render("summary", Lang::Zh, &ctx).unwrap();
        assert!(zh.contains("成员名单未知"));
        assert!(zh.contains("**已读 3 人：**Li Lei、Zhang Wei、u3 … 等另外 5 人"));
        assert!(!zh.contains("未读"));
    }

    #[test]
    fn summary_says_how_old_a_cached_member_list_is() {
        let fresh = renderer().render("summary", Lang::En, &summary()).unwrap();
        assert!(!fresh.contains(" ago)"), "{fresh}");
        for (minutes, en_says, zh_says) in [
            (
                12,
                "group member list (member list from 12 min ago)",
                "（12 分钟前获取的成员列表）",
            ),
            (
                0,
                "(member list from under a minute ago)",
                "（不到 1 分钟前获取的成员列表）",
            ),
        ] {
            let ctx = SummaryView {
                roster_age_minutes: Some(minutes),
                ..summary()
            };
            let en = renderer().render("summary", Lang::En, &ctx).unwrap();
            assert!(en.contains(en_says), "{en}");
            let zh = renderer().render("summary", Lang::Zh, &ctx).unwrap();
            assert!(zh.contains(zh_says), "{zh}");
        }
    }

    #[test]
    fn summary_fallback_learned_incomplete_truncated() {
        let ctx = SummaryView {
            fallback: true,
            truncated: true,
            roster_source: "learned".into(),
            roster_complete: false,
            ..summary()
        };
        let en = renderer().render("summary", Lang::En, &ctx).unwrap();
        println!("{en}");
        assert!(en.contains("> You have no notice here, showing the group's last one."));
        assert!(en.contains("members readbot has seen in this group (may be incomplete)"));
        assert!(en.contains("member list may be incomplete"));
        assert!(en.contains("page limit"));
        assert!(!en.contains("\n\n\n"), "{en:?}");
        let zh = renderer().render("summary", Lang::Zh, &ctx).unwrap();
        println!("{zh}");
        assert!(zh.contains("> 你在本群没有发过通知，以下是本群最近的一条。"));
        assert!(zh.contains("readbot 在本群见过的成员（可能不完整）"));
        assert!(zh.contains("截断"));
        assert!(!zh.contains("\n\n\n"), "{zh:?}");
    }

    #[test]
    fn summary_statuses_and_sources() {
        let r = renderer();
        let cases = [
            (
                "RECALLED",
                "recalled by the sender: read data stops",
                "已被发送者撤回",
            ),
            (
                "PROCESSING",
                "still being delivered: counts may grow",
                "仍在投递中",
            ),
            ("WEIRD_NEW", "Status: WEIRD_NEW", "状态：WEIRD_NEW"),
        ];
        for (status, en_text, zh_text) in cases {
            let ctx = SummaryView {
                send_status: status.into(),
                roster_source: "scene_group".into(),
                ..summary()
            };
            let en = r.render("summary", Lang::En, &ctx).unwrap();
            assert!(en.contains(en_text), "{en}");
            assert!(en.contains("Roster: scene group member list"));
            let zh = r.render("summary", Lang::Zh, &ctx).unwrap();
            assert!(zh.contains(zh_text), "{zh}");
            assert!(zh.contains("场景群成员列表"));
        }
    }

    #[test]
    fn summary_everyone_read_and_nobody_read() {
        let r = renderer();
        let all = SummaryView {
            unread_count: 0,
            unread: vec![],
            unread_more: 0,
            percent: 100,
            ..summary()
        };
        assert!(r
            .render("summary", Lang::En, &all)
            .unwrap()
            .contains("everyone has read it"));
        let none = SummaryView {
            read_count: 0,
            read: vec![],
            ..summary()
        };
        assert!(r
            .render("summary", Lang::En, &none)
            .unwrap()
            .contains("**Read (0):** nobody yet"));
        assert!(r
            .render("summary", Lang::Zh, &none)
            .unwrap()
            .contains("**已读（0）：**暂无"));
    }

    #[test]
    fn summary_without_author() {
        let ctx = SummaryView {
            author: String::new(),
            ..summary()
        };
        let out = renderer().render("summary", Lang::En, &ctx).unwrap();
        assert!(
            out.contains("\nSent 2024-05-17 09:30 (Asia/Shanghai)\n"),
            "{out}"
        );
    }

    #[test]
    fn list_renders_numbered_items_and_hint() {
        let ctx = ListView {
            notices: vec![
                ListItemView {
                    n: 1,
                    title: "Drill".into(),
                    author: "Li Lei".into(),
                    sent_at: "2024-05-17 09:30".into(),
                },
                ListItemView {
                    n: 2,
                    title: "Menu".into(),
                    author: String::new(),
                    sent_at: "2024-05-16 11:00".into(),
                },
            ],
            timezone: "Asia/Shanghai".into(),
            group_url: String::new(),
        };
        let en = renderer().render("list", Lang::En, &ctx).unwrap();
        println!("{en}");
        assert!(
            en.contains("1. **Drill**, Li Lei, 2024-05-17 09:30\n2. **Menu**, 2024-05-16 11:00\n")
        );
        assert!(en.contains("Ask **status N** to see who has read notice N."));
        assert!(en.contains("Times are in Asia/Shanghai."), "{en}");
        let zh = renderer().render("list", Lang::Zh, &ctx).unwrap();
        assert!(
            zh.contains("1. **Drill**，Li Lei，2024-05-17 09:30\n2. **Menu**，2024-05-16 11:00\n")
        );
        assert!(zh.contains("发送 **状态 N** 查看"));
        assert!(zh.contains("时间为 Asia/Shanghai 时间。"), "{zh}");
        assert!(
            !en.contains("All notices") && !zh.contains("全部通知"),
            "{en}"
        );
        let linked = ListView {
            group_url: "https://readbot.example.com/g/tok".into(),
            ..ctx.clone()
        };
        let en = renderer().render("list", Lang::En, &linked).unwrap();
        assert!(
            en.ends_with("[All notices](https://readbot.example.com/g/tok)"),
            "{en}"
        );
        let zh = renderer().render("list", Lang::Zh, &linked).unwrap();
        assert!(
            zh.ends_with("[全部通知](https://readbot.example.com/g/tok)"),
            "{zh}"
        );
        let none = ListView {
            notices: vec![],
            timezone: "Asia/Shanghai".into(),
            group_url: String::new(),
        };
        let empty = renderer().render("list", Lang::En, &none).unwrap();
        assert!(empty.contains("No notices"));
        // How a notice gets tracked, in words for group members (no HTTP path).
        assert!(empty.contains("readbot send command"), "{empty}");
        assert!(
            !empty.contains("/api/") && !empty.contains("POST"),
            "{empty}"
        );
        let empty = renderer().render("list", Lang::Zh, &none).unwrap();
        assert!(empty.contains("readbot send 命令"), "{empty}");
    }

    #[test]
    fn help_lists_commands_and_unknown_text() {
        let r = renderer();
        for lang in LANGS {
            let plain = r
                .render(
                    "help",
                    lang,
                    &HelpView {
                        unknown: String::new(),
                    },
                )
                .unwrap();
            for cmd in [
                "who read",
                "status",
                "谁读了",
                "已读",
                "谁没读",
                "未读",
                "list",
                "列表",
                "status N",
                "状态 N",
                "help",
                "帮助",
            ] {
                assert!(plain.contains(cmd), "{lang:?} help lacks {cmd}");
            }
            let confused = r
                .render(
                    "help",
                    lang,
                    &HelpView {
                        unknown: "banana".into(),
                    },
                )
                .unwrap();
            assert!(confused.contains("banana"));
            assert!(!plain.contains("understand") && !plain.contains("没有看懂"));
        }
        let en = r
            .render(
                "help",
                Lang::En,
                &HelpView {
                    unknown: "banana".into(),
                },
            )
            .unwrap();
        assert!(en.starts_with("I did not understand \"banana\"."), "{en}");
    }

    #[test]
    fn error_shows_message() {
        let ctx = ErrorView {
            message: "DingTalk is down.".into(),
        };
        let r = renderer();
        assert_eq!(
            r.render("error", Lang::En, &ctx).unwrap(),
            "**Sorry:** DingTalk is down."
        );
        assert_eq!(
            r.render("error", Lang::Zh, &ctx).unwrap(),
            "**抱歉：**DingTalk is down."
        );
    }

    #[test]
    fn markdown_is_not_html_escaped() {
        let ctx = ErrorView {
            message: "a < b & \"c\" 'd'".into(),
        };
        let out = renderer().render("error", Lang::En, &ctx).unwrap();
        assert!(out.ends_with("a < b & \"c\" 'd'"), "{out}");
    }

    #[test]
    fn override_folder_replaces_one_template_and_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("error.en.md.j2"), "custom: {{ message }}\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a template").unwrap();
        let r = Renderer::new(Some(dir.path())).unwrap();
        assert_eq!(r.overridden(), ["error.en.md.j2"]);
        let ctx = ErrorView {
            message: "boom".into(),
        };
        assert_eq!(r.render("error", Lang::En, &ctx).unwrap(), "custom: boom");
        assert_eq!(r.render("error", Lang::Zh, &ctx).unwrap(), "**抱歉：**boom");
        assert!(r
            .render("summary", Lang::En, &summary())
            .unwrap()
            .contains("**Read: 3/7 (42%)**"));
    }

    #[test]
    fn broken_override_is_a_clear_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.zh.md.j2");
        std::fs::write(&path, "{% for x in notices %}\n{{ x.title }\n").unwrap();
        let err = Renderer::new(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("syntax error"), "{err}");
    }

    #[test]
    fn override_with_misspelt_variable_fails_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.en.md.j2");
        std::fs::write(&path, "{{ titel }}").unwrap();
        let err = Renderer::new(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn missing_override_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = Renderer::new(Some(&missing)).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn an_undefined_variable_is_named_with_its_file_and_line() {
        let r = renderer();
        // A context without the variable the template wants.
        let err = r
            .render(
                "error",
                Lang::En,
                &HelpView {
                    unknown: String::new(),
                },
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("error.en.md.j2"), "{err}");
        assert!(
            err.contains("undefined variable \"message\" (in error.en.md.j2:2)"),
            "{err}"
        );
        let err = render_str(
            "a\n{% if nope %}x{% endif %}",
            &ErrorView {
                message: "m".into(),
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"nope\" (in <string>:2)"), "{err}");
        let err = preview(
            "list",
            "my/list.en.md.j2",
            "{% for i in notices %}{{ i.titel }}{% endfor %}",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("my/list.en.md.j2"), "{err}");
        assert!(err.contains("\"i.titel\""), "{err}");
        // Override files are named by their path.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.zh.md.j2");
        std::fs::write(&path, "### {{ title }}\n{{ unread_cnt }}\n").unwrap();
        let err = Renderer::new(Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(
            err.contains("\"unread_cnt\" (in summary.zh.md.j2:2)"),
            "{err}"
        );
    }

    #[test]
    fn templates_use_no_inline_code() {
        // DingTalk's markdown subset has no inline code: a backtick shows as is.
        for name in template_names() {
            for lang in LANGS {
                let file = template_file_name(name, lang);
                let src = embedded_source(&file).unwrap();
                assert!(!src.contains('`'), "{file} uses a backtick");
                for p in preview(name, &file, src).unwrap() {
                    assert!(
                        !p.output.contains('`'),
                        "{file} / {}: {}",
                        p.sample,
                        p.output
                    );
                }
            }
        }
    }

    #[test]
    fn strict_undefined() {
        let ctx = ErrorView {
            message: "x".into(),
        };
        let err = render_str("{{ mesage }}", &ctx).unwrap_err().to_string();
        assert!(err.contains("undefined"), "{err}");
        assert!(render_str("{% if nope %}x{% endif %}", &ctx).is_err());
        assert!(render_str("{% for p in nope %}{% endfor %}", &ctx).is_err());
        assert_eq!(render_str("{{ message }}!", &ctx).unwrap(), "x!");
    }

    #[test]
    fn unknown_template_name_is_an_error() {
        let err = renderer()
            .render(
                "nope",
                Lang::En,
                &HelpView {
                    unknown: String::new(),
                },
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.en.md.j2"), "{err}");
    }

    #[test]
    fn trim_and_lstrip_blocks_are_on() {
        let ctx = ListView {
            notices: vec![ListItemView {
                n: 1,
                title: "t".into(),
                author: String::new(),
                sent_at: "s".into(),
            }],
            timezone: String::new(),
            group_url: String::new(),
        };
        let out = render_str(
            "a\n  {% for i in notices %}\n{{ i.n }}\n  {% endfor %}\nb",
            &ctx,
        )
        .unwrap();
        assert_eq!(out, "a\n1\nb");
    }
}
