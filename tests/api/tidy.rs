//! The layering written down as a test (in the spirit of rust-analyzer's `tidy`): a new arrow in the wrong
//! direction fails here with a sentence naming the rule it broke. ARCHITECTURE.md ("Layers") explains each rule.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Which top-level modules each module may name with `crate::…`. Lower layers never name higher ones; only the
/// sandbox (a demo, not the service) may use the fake DingTalk.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("metrics", &["domain"]),
    ("config", &["domain"]),
    ("store", &["domain", "config", "metrics"]),
    ("dingtalk", &["domain", "config", "metrics"]),
    ("render", &["domain", "config"]),
    (
        "bot",
        &["domain", "config", "metrics", "store", "dingtalk", "render"],
    ),
    (
        "http",
        &[
            "domain", "config", "metrics", "store", "dingtalk", "render", "bot",
        ],
    ),
    (
        "app",
        &[
            "domain", "config", "metrics", "store", "dingtalk", "render", "bot", "http",
        ],
    ),
    (
        "cli",
        &[
            "domain", "config", "metrics", "store", "dingtalk", "render", "app",
        ],
    ),
    ("fake", &["domain", "dingtalk"]),
    (
        "sandbox",
        &[
            "domain", "config", "metrics", "store", "dingtalk", "render", "bot", "http", "app",
            "fake",
        ],
    ),
];

/// External crates a module must not name, with the reason printed when it does.
const FORBIDDEN_CRATES: &[(&str, &[&str], &str)] = &[
    (
        "bot",
        &["axum", "reqwest", "sled", "hyper", "tower", "tower_http"],
        "bot logic is transport- and storage-agnostic: it sees DingTalkApi and Store, never HTTP or sled",
    ),
    (
        "render",
        &["axum", "reqwest", "sled"],
        "rendering turns view models into text and knows nothing of transports or storage",
    ),
    (
        "dingtalk",
        &["sled", "axum"],
        "the DingTalk client speaks to DingTalk only; storage and readbot's own HTTP surface live elsewhere",
    ),
];

/// JSON field names and headers that exist only on DingTalk's wire (readbot's own API does not use them), so only
/// `src/dingtalk/` and the fake may spell them. readbot's API deliberately reuses a few of DingTalk's names for its
/// own fields (`processQueryKey`, `openConversationId`, `robotCode`, `msgKey`, `msgParam`); those are not listed.
const WIRE_ONLY_NAMES: &[&str] = &[
    "sessionWebhook",
    "sessionWebhookExpiredTime",
    "senderStaffId",
    "senderNick",
    "senderCorpId",
    "chatbotUserId",
    "conversationId",
    "conversationType",
    "isInAtList",
    "atUsers",
    "atUserIds",
    "errcode",
    "errmsg",
    "readUserIds",
    "nextToken",
    "hasMore",
    "memberUserIds",
    "coolAppCode",
    "staffIdNickMap",
    "accessToken",
    "expireIn",
    "x-acs-dingtalk-access-token",
    "invalidStaffIdList",
    "flowControlledStaffIdList",
    "failedResult",
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file of a top-level module (`src/x.rs` or `src/x/**.rs`).
fn files_of(module: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let file = src_dir().join(format!("{module}.rs"));
    if file.is_file() {
        out.push(file);
    }
    let dir = src_dir().join(module);
    if dir.is_dir() {
        walk(&dir, &mut out);
    }
    out.sort();
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code without comments and without its `#[cfg(test)] mod tests { … }` tail (unit tests may use test
/// tools of any layer; the rules are about the shipped code). Test-only files (`tests.rs`) are skipped entirely.
fn shipped_code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut code = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

fn rel(path: &Path) -> String {
    path.strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Names `X` in every `crate::X` of the code.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
        rest = after;
    }
    found
}

/// Whether the code names the crate as a path (`krate::…`, `::krate::…`) or imports it whole (`use krate;`). A word
/// in a string ("sled folder") is not a use of the crate.
fn names_crate(code: &str, krate: &str) -> bool {
    let path = format!("{krate}::");
    let rooted = format!("::{krate}::");
    code.contains(&format!("use {krate};"))
        || code.contains(&format!("use {krate} as"))
        || code
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .any(|tok| tok.starts_with(&path) || tok.starts_with(&rooted))
}

#[test]
fn every_top_level_module_has_a_layer() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(src_dir())
        .expect("src/ is readable")
        .flatten()
    {
        let path = entry.path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        if !ALLOWED.iter().any(|(m, _)| *m == name) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "tidy: the module(s) {missing:?} have no layer: add them to ALLOWED in tests/api/tidy.rs and to \
         ARCHITECTURE.md's Layers section"
    );
}

#[test]
fn dependencies_run_one_way() {
    let mut broken = Vec::new();
    for (module, allowed) in ALLOWED {
        for file in files_of(module) {
            let code = shipped_code(&file);
            for used in crate_paths(&code) {
                let is_top_level = ALLOWED.iter().any(|(m, _)| *m == used);
                if used != *module && is_top_level && !allowed.contains(&used.as_str()) {
                    broken.push(format!(
                        "{} uses crate::{used}, but `{module}` may only use {allowed:?}",
                        rel(&file)
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "tidy: a dependency runs the wrong way (lower layers never name higher ones; see ARCHITECTURE.md):\n{}",
        broken.join("\n")
    );
}

#[test]
fn layers_do_not_name_forbidden_crates() {
    let mut broken = Vec::new();
    for (module, crates, why) in FORBIDDEN_CRATES {
        for file in files_of(module) {
            let code = shipped_code(&file);
            for krate in *crates {
                if names_crate(&code, krate) {
                    broken.push(format!("{} names `{krate}`: {why}", rel(&file)));
                }
            }
        }
    }
    assert!(broken.is_empty(), "tidy: {}", broken.join("\n"));
}

#[test]
fn only_the_store_names_sled_or_postgres() {
    let mut broken = Vec::new();
    for (module, _) in ALLOWED {
        if *module == "store" {
            continue;
        }
        for file in files_of(module) {
            let code = shipped_code(&file);
            let names_a_backend = ["sled", "tokio_postgres", "deadpool_postgres", "deadpool"]
                .iter()
                .any(|krate| names_crate(&code, krate));
            if names_a_backend || code.contains("SledStore") || code.contains("PgStore") {
                broken.push(rel(&file));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "tidy: only src/store/ may name sled or PostgreSQL's crates (everyone else opens the store with store::open and sees \
         Arc<dyn Store>); these files do: {broken:?}"
    );
}

#[test]
fn only_the_dingtalk_client_and_the_fake_spell_dingtalk_field_names() {
    let mut broken = Vec::new();
    for (module, _) in ALLOWED {
        if *module == "dingtalk" || *module == "fake" {
            continue;
        }
        for file in files_of(module) {
            let code = shipped_code(&file);
            for name in WIRE_ONLY_NAMES {
                if code.contains(&format!("\"{name}\"")) {
                    broken.push(format!("{} spells \"{name}\"", rel(&file)));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "tidy: only src/dingtalk/ (and the fake) may know DingTalk's JSON field names and headers; move the \
         wire format there:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_rules_catch_what_they_should() {
    // The scanners themselves, so a rule cannot silently pass by never matching.
    assert!(crate_paths("use crate::bot::Bot;\nlet x = crate::store::open(&c);").contains("bot"));
    assert!(crate_paths("use crate::bot::Bot;\nlet x = crate::store::open(&c);").contains("store"));
    assert!(names_crate("use axum::Router;", "axum"));
    assert!(names_crate("let d = sled::open(p)?;", "sled"));
    assert!(names_crate(
        "let c = tokio_postgres::Config::new();",
        "tokio_postgres"
    ));
    assert!(!names_crate("let sledge = 1;", "sled"));
    assert!(!names_crate(
        r#"("READBOT_DATA_DIR", "data_dir", "sled folder")"#,
        "sled"
    ));
    assert!(names_crate("use sled;", "sled"));
    assert!(!files_of("bot").is_empty(), "tidy reads src/bot");
    assert!(!files_of("dingtalk").is_empty(), "tidy reads src/dingtalk");
}

/// Sibling files a file of `dir` names (`super::x`, `crate::<module>::x`), `mod.rs` excluded: a module's root may
/// use its children and they may use what it defines, but two sibling files never use each other.
fn sibling_uses(module: &str, file: &Path, siblings: &[String]) -> BTreeSet<String> {
    let code = shipped_code(file);
    let own = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    siblings
        .iter()
        .filter(|s| s.as_str() != own)
        .filter(|s| {
            code.contains(&format!("super::{s}::"))
                || code.contains(&format!("super::{s}::{{"))
                || code.contains(&format!("crate::{module}::{s}::"))
        })
        .cloned()
        .collect()
}

#[test]
fn sibling_files_do_not_use_each_other() {
    let mut broken = Vec::new();
    for (module, _) in ALLOWED {
        let dir = src_dir().join(module);
        if !dir.is_dir() {
            continue;
        }
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("module folder is readable")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n != "mod.rs" && n != "tests.rs")
            })
            .collect();
        let stems: Vec<String> = files
            .iter()
            .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_string))
            .collect();
        for (file, stem) in files.iter().zip(&stems) {
            for other in sibling_uses(module, file, &stems) {
                let back = dir.join(format!("{other}.rs"));
                if other.as_str() < stem.as_str()
                    && sibling_uses(module, &back, &stems).contains(stem)
                {
                    broken.push(format!(
                        "src/{module}/{other}.rs and src/{module}/{stem}.rs use each other"
                    ));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "tidy: a cycle between files (move what both need into a file of its own, used by both):\n{}",
        broken.join("\n")
    );
}
