//! Template rendering (minijinja): embedded defaults from `templates/`,
//! overridable file by file from a folder named in config.
//!
//! (Placeholder until the templates work lands.)

use crate::domain::Lang;
use serde::Serialize;
use std::path::Path;

/// Template errors.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The template is missing or invalid, or rendering failed.
    #[error("template {name}: {message}")]
    Template {
        /// Template file name.
        name: String,
        /// What went wrong.
        message: String,
    },
}

/// Renders the named templates.
pub struct Renderer {}

impl Renderer {
    /// Loads embedded templates, then overrides from `dir` if given.
    pub fn new(_dir: Option<&Path>) -> Result<Self, RenderError> {
        Ok(Self {})
    }

    /// Renders `<name>.<lang>.md.j2` with `ctx`.
    pub fn render<T: Serialize>(
        &self,
        name: &str,
        lang: Lang,
        ctx: &T,
    ) -> Result<String, RenderError> {
        let _ = ctx;
        Err(RenderError::Template {
            name: format!("{name}.{}.md.j2", lang.code()),
            message: "not available yet".into(),
        })
    }
}
