//! `readbot render --template FILE --sample`: preview a reply template
//! before deploying it, with the exact settings readbot uses.

use super::CliError;
use std::io::Write;
use std::path::PathBuf;

/// `readbot render`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("data_source").required(true).args(["sample", "data"])))]
pub struct RenderArgs {
    /// The template file to preview, e.g. my-templates/summary.zh.md.j2.
    #[arg(long, short = 't', value_name = "FILE")]
    pub template: PathBuf,
    /// Render against readbot's built-in sample data (every case the start-up check uses).
    #[arg(long)]
    pub sample: bool,
    /// Render against the JSON object in this file instead (the variables are listed in templates/README.md).
    #[arg(long, value_name = "JSON_FILE")]
    pub data: Option<PathBuf>,
    /// Which template this is (summary, list, help or error; by default from
    /// the file name, `<name>.<lang>.md.j2`).
    #[arg(
        long,
        value_name = "NAME",
        help = "Which template this is: summary, list, help or error [default: from the file name, <name>.<lang>.md.j2]"
    )]
    pub kind: Option<String>,
}

/// Renders the template; a template error is a failure (exit 1) naming the
/// file and line.
pub fn render(args: &RenderArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let shown = args.template.display().to_string();
    let source = std::fs::read_to_string(&args.template)
        .map_err(|e| CliError::Usage(format!("cannot read template {shown}: {e}")))?;
    if let Some(data) = &args.data {
        let text = std::fs::read_to_string(data)
            .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", data.display())))?;
        let ctx: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| CliError::Usage(format!("{} is not valid JSON: {e}", data.display())))?;
        if !ctx.is_object() {
            return Err(CliError::Usage(format!(
                "{} must hold a JSON object (the template's variables)",
                data.display()
            )));
        }
        let output = crate::render::preview_with(&shown, &source, &ctx)
            .map_err(|e| CliError::Failed(e.to_string()))?;
        writeln!(out, "{output}")?;
        return Ok(());
    }
    let kind = match &args.kind {
        Some(k) => k.trim().to_owned(),
        None => {
            let file = args
                .template
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            crate::render::name_of_file(&file)
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "cannot tell which template {shown} is: name it <name>.<lang>.md.j2 (name: {}, lang: en or zh) or pass --kind",
                        crate::render::template_names().join(", ")
                    ))
                })?
                .to_owned()
        }
    };
    if !crate::render::template_names().contains(&kind.as_str()) {
        return Err(CliError::Usage(format!(
            "--kind {kind:?} is not one of {}",
            crate::render::template_names().join(", ")
        )));
    }
    let previews = crate::render::preview(&kind, &shown, &source)
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let total = previews.len();
    for (i, p) in previews.iter().enumerate() {
        writeln!(
            out,
            "──── {kind} sample {}/{total}: {} ({} bytes) ────",
            i + 1,
            p.sample,
            p.output.len()
        )?;
        writeln!(out, "{}\n", p.output)?;
    }
    Ok(())
}
