//! Untrusted text in DingTalk markdown.
//!
//! Everything taken from a callback body (`senderNick`, the text a user
//! typed), and every name or title that reaches a template, may carry
//! markdown: a link to a phishing page, an image, a heading, an `@` run that
//! mentions people, an HTML-ish tag, a newline that starts a block of its
//! own. [`neutralise`] turns such text into plain text that looks the same
//! to a reader but has no markup effect in DingTalk's markdown: every
//! character is mapped to exactly one character, markup characters to their
//! full-width look-alikes (DingTalk's renderer does not document backslash
//! escapes, so escaping is not relied on), line breaks and other control
//! characters to a space, and `://` loses its scheme colon so no bare link
//! is formed.
//!
//! The bot fills every view-model string from such sources through it; the
//! templates also have it as the `neutralise` filter, for operators' own
//! variables.

/// The full-width look-alike of a markdown or HTML markup character, if `c`
/// is one.
fn look_alike(c: char) -> Option<char> {
    Some(match c {
        '[' => '［',
        ']' => '］',
        '(' => '（',
        ')' => '）',
        '<' => '＜',
        '>' => '＞',
        '#' => '＃',
        '@' => '＠',
        '!' => '！',
        '*' => '＊',
        '`' => '｀',
        '~' => '～',
        '|' => '｜',
        '&' => '＆',
        '\\' => '＼',
        _ => return None,
    })
}

/// `text` with no markup effect in DingTalk markdown (see the module docs):
/// same number of characters, none of `[ ] ( ) < > # @ ! * ` ~ | & \`, no
/// control character or line break, no `://`. Plain words (letters, digits,
/// CJK, spaces, `_ - . , : /`) pass unchanged; applying it twice changes
/// nothing more.
pub fn neutralise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.push(' ');
        } else if let Some(alike) = look_alike(c) {
            out.push(alike);
        } else if c == ':' && chars.peek() == Some(&'/') && out_next_is_slash(&chars) {
            out.push('：');
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether the next two characters are `//` (the first is known to be `/`).
fn out_next_is_slash(chars: &std::iter::Peekable<std::str::Chars<'_>>) -> bool {
    let mut ahead = chars.clone();
    ahead.next();
    ahead.next() == Some('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MARKUP: &[char] = &[
        '[', ']', '(', ')', '<', '>', '#', '@', '!', '*', '`', '~', '|', '&', '\\',
    ];

    #[test]
    fn the_observed_attacks_become_plain_text() {
        assert_eq!(
            neutralise("[IT desk](https://phish.example/login)"),
            "［IT desk］（https：//phish.example/login）"
        );
        assert_eq!(
            neutralise("![x](http://a/b.png)"),
            "！［x］（http：//a/b.png）"
        );
        assert_eq!(
            neutralise("Ann\n### Everyone has read"),
            "Ann ＃＃＃ Everyone has read"
        );
        assert_eq!(neutralise("@all @@@13800000000"), "＠all ＠＠＠13800000000");
        assert_eq!(
            neutralise("<font color=red>x</font>"),
            "＜font color=red＞x＜/font＞"
        );
        assert_eq!(neutralise("a\r\n\tb\u{2028}c"), "a   b c");
        assert_eq!(neutralise("see https://x"), "see https：//x");
    }

    #[test]
    fn templates_have_it_as_a_filter() {
        let ctx = serde_json::json!({ "x": "[a](http://b) @all" });
        assert_eq!(
            crate::render::render_str("{{ x | neutralise }}", &ctx).unwrap(),
            "［a］（http：//b） ＠all"
        );
    }

    #[test]
    fn plain_names_pass_unchanged() {
        for s in [
            "张三",
            "Ann Lee",
            "li_wei-2",
            "Dr. Müller, 3/4: ok",
            "a:/b",
            "",
        ] {
            assert_eq!(neutralise(s), s);
        }
    }

    proptest! {
        #[test]
        fn no_markup_survives(s in "\\PC*|.*|[\\[\\]()<>#@!*`~|&\\\\:/\\n\\r a-z]{0,40}") {
            let out = neutralise(&s);
            prop_assert!(!out.chars().any(|c| MARKUP.contains(&c)), "{out:?}");
            prop_assert!(!out.chars().any(char::is_control), "{out:?}");
            prop_assert!(!out.contains("://"), "{out:?}");
        }

        #[test]
        fn one_character_for_one_and_idempotent(s in any::<String>()) {
            let out = neutralise(&s);
            prop_assert_eq!(out.chars().count(), s.chars().count());
            prop_assert_eq!(neutralise(&out), out.clone());
        }

        #[test]
        fn words_pass_unchanged(s in "[\\p{L}\\p{N} _.,:/-]{0,40}") {
            prop_assume!(!s.contains("://"));
            prop_assert_eq!(neutralise(&s), s);
        }
    }
}
