//! From a message to the n-grams a classifier weighs.
//!
//! A message is first cut to what the customer wrote this time
//! ([`body`]: quoted replies and the signature go, since they carry an
//! older topic and the sender's job title), then normalised exactly as the
//! keyword helpers do ([`crate::rules::normalize`]: NFKC and lower case,
//! so `ＲＥＦＵＮＤ`, `Refund` and `refund` are one feature and half-width
//! `ﾍﾝｷﾝ` is `ヘンキン`). Its features are:
//!
//! - character n-grams of 2 and 3 characters over the text with runs of
//!   white space folded to one space (so Japanese, which does not separate
//!   words, needs no tokenizer), and single characters outside ASCII
//!   (one kanji often is a word: 届, 幅);
//! - word unigrams and bigrams over runs of Latin letters and digits, so
//!   `money back` weighs as a phrase.
//!
//! Each feature is identified by a 64-bit FNV-1a hash of its kind and
//! text: classifying a message builds no strings, and the hash is the same
//! on every platform.

/// Characters of a message that are read; the rest of a very long e-mail
/// says little the first part did not, and costs time.
pub const MAX_CHARS: usize = 2000;

/// The longest character n-gram. Cross-validation on the default pack's
/// examples: 2-3 grams generalise better than 2-4 (longer grams mostly
/// memorise the examples); Japanese words of two kanji are bigrams.
const MAX_GRAM: usize = 3;

/// The kinds of feature, part of each feature's hash.
const CHAR_GRAM: u8 = b'c';
const WORD_GRAM: u8 = b'w';

/// FNV-1a, 64 bits: fixed, portable, and fast on short keys.
#[derive(Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Fnv {
    pub fn new(kind: u8) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325).byte(kind)
    }

    fn byte(self, b: u8) -> Fnv {
        Fnv((self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
    }

    pub fn char(self, c: char) -> Fnv {
        let mut buf = [0u8; 4];
        c.encode_utf8(&mut buf).bytes().fold(self, |h, b| h.byte(b))
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

/// The part of a message the customer wrote this time: lines quoted from
/// earlier mail (`>`) are dropped, and reading stops at a signature
/// separator (`--`), a forwarded or quoted original ("-----Original
/// Message-----", "On … wrote:", "…書きました:") or a line of rule
/// characters (`――――`, `━━━`, `====`) that Japanese signatures open with.
pub fn body(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_CHARS * 3));
    for line in text.lines() {
        let t = line.trim();
        if t == "--" || is_rule_line(t) || opens_quote(t) {
            break;
        }
        if t.starts_with('>') || t.starts_with('＞') {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn is_rule_line(t: &str) -> bool {
    let n = t.chars().count();
    n >= 4
        && t.chars().all(|c| {
            matches!(
                c,
                '-' | '=' | '_' | '─' | '━' | '―' | '＝' | '＿' | '*' | '～'
            )
        })
        && !t.starts_with("----- ")
}

fn opens_quote(t: &str) -> bool {
    let lower = t.to_lowercase();
    (lower.starts_with("-----") && lower.contains("original"))
        || (lower.starts_with("on ") && lower.ends_with("wrote:"))
        || lower.ends_with("書きました:")
        || lower.ends_with("書きました：")
        || lower.starts_with("from: ") && (lower.contains('@') || lower.contains("sent:"))
        || lower.starts_with("差出人:")
        || lower.starts_with("差出人：")
}

/// The text a classifier reads: [`body`], normalised, white space folded,
/// at most [`MAX_CHARS`] characters, padded with one space at each end so
/// that n-grams see where words start and end.
pub fn prepare(text: &str) -> Vec<char> {
    let body = body(text);
    // The keyword helpers' normalisation, skipping the NFKC pass for text
    // that is already in NFKC (most messages), where it changes nothing.
    let normalized = if unicode_normalization::is_nfkc_quick(body.chars())
        == unicode_normalization::IsNormalized::Yes
    {
        if body.chars().any(char::is_uppercase) {
            body.to_lowercase()
        } else {
            body
        }
    } else {
        crate::rules::normalize(&body)
    };
    let mut chars = Vec::with_capacity(normalized.len().min(MAX_CHARS) + 2);
    chars.push(' ');
    for c in normalized.chars() {
        if chars.len() > MAX_CHARS {
            break;
        }
        let c = if c.is_whitespace() || c.is_control() {
            ' '
        } else {
            c
        };
        if c == ' ' && chars.last() == Some(&' ') {
            continue;
        }
        chars.push(c);
    }
    if chars.last() != Some(&' ') {
        chars.push(' ');
    }
    chars
}

/// A character that belongs to a Latin-script word (ASCII letters and
/// digits, letters with diacritics, the apostrophe of "don't").
fn is_latin_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || c == '\''
        || (c.is_alphabetic() && ('\u{00C0}'..='\u{024F}').contains(&c))
}

/// Call `f(hash, start, len, is_word)` for every feature of prepared text
/// `chars`: `start` and `len` locate it (in characters for a character
/// n-gram; in words, over [`words`], for a word n-gram).
pub(crate) fn each_feature(chars: &[char], mut f: impl FnMut(u64, usize, usize, bool)) {
    let n = chars.len();
    for i in 0..n {
        let c = chars[i];
        if !c.is_ascii() && !c.is_whitespace() && c.is_alphanumeric() {
            f(Fnv::new(CHAR_GRAM).char(c).finish(), i, 1, false);
        }
        let mut h = Fnv::new(CHAR_GRAM).char(c);
        for len in 2..=MAX_GRAM {
            let Some(&next) = chars.get(i + len - 1) else {
                break;
            };
            h = h.char(next);
            f(h.finish(), i, len, false);
        }
    }
    let words = words(chars);
    for (w, &(start, end)) in words.iter().enumerate() {
        let mut h = Fnv::new(WORD_GRAM);
        for &c in &chars[start..end] {
            h = h.char(c);
        }
        f(h.finish(), w, 1, true);
        if let Some(&(s2, e2)) = words.get(w + 1) {
            h = h.char(' ');
            for &c in &chars[s2..e2] {
                h = h.char(c);
            }
            f(h.finish(), w, 2, true);
        }
    }
}

/// The Latin-script words of prepared text, as character ranges.
pub(crate) fn words(chars: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &c) in chars.iter().enumerate() {
        match (is_latin_word_char(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, chars.len()));
    }
    out
}

/// The text of a feature, for explanations: `"返金"`, `"money back"`.
pub(crate) fn feature_text(chars: &[char], start: usize, len: usize, is_word: bool) -> String {
    if is_word {
        let words = words(chars);
        words[start..start + len]
            .iter()
            .map(|&(s, e)| chars[s..e].iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        chars[start..start + len].iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(text: &str) -> Vec<String> {
        let chars = prepare(text);
        let mut out = Vec::new();
        each_feature(&chars, |_, s, l, w| out.push(feature_text(&chars, s, l, w)));
        out
    }

    #[test]
    fn quoted_replies_and_signatures_are_not_read() {
        let mail = "Where is my parcel?\n\nOn Mon, Jo wrote:\n> I want a refund\n";
        assert_eq!(body(mail), "Where is my parcel?\n\n");
        let mail =
            "返金してください\n> 古い引用\nよろしく\n--\n山田 太郎\n経理部 invoice@example.com";
        assert_eq!(body(mail), "返金してください\nよろしく\n");
        let mail = "届きません\n――――――――\n株式会社サンプル 配送部";
        assert_eq!(body(mail), "届きません\n");
    }

    #[test]
    fn width_and_case_do_not_matter() {
        assert_eq!(features("ＲＥＦＵＮＤ"), features("refund"));
        assert_eq!(features("ﾍﾝｷﾝ"), features("ヘンキン"));
    }

    #[test]
    fn japanese_gets_characters_and_latin_gets_words() {
        let f = features("返金 money back");
        assert!(f.contains(&"返".to_owned()));
        assert!(f.contains(&"返金".to_owned()));
        assert!(f.contains(&"money back".to_owned()));
        assert!(f.contains(&"money".to_owned()));
        assert!(f.contains(&" mo".to_owned()));
        assert!(f.contains(&"mon".to_owned()));
    }

    #[test]
    fn long_text_is_cut() {
        let text = "a".repeat(10 * MAX_CHARS);
        assert!(prepare(&text).len() <= MAX_CHARS + 2);
    }
}
