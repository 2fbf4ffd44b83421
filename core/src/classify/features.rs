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
    body_into(text, &mut out);
    out
}

/// [`body`] into a buffer the caller reuses.
fn body_into(text: &str, out: &mut String) {
    out.clear();
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

/// Whether a line opens a quoted or forwarded original. The patterns are
/// ASCII or caseless, so comparing ASCII letters without case is the same
/// as lower-casing the line (no other character lower-cases to one of
/// their letters), and no line is copied to be read.
fn opens_quote(t: &str) -> bool {
    (starts_with_caseless(t, "-----") && contains_caseless(t, "original"))
        || (starts_with_caseless(t, "on ") && ends_with_caseless(t, "wrote:"))
        || t.ends_with("書きました:")
        || t.ends_with("書きました：")
        || starts_with_caseless(t, "from: ") && (t.contains('@') || contains_caseless(t, "sent:"))
        || t.starts_with("差出人:")
        || t.starts_with("差出人：")
}

fn starts_with_caseless(t: &str, ascii: &str) -> bool {
    t.as_bytes()
        .get(..ascii.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(ascii.as_bytes()))
}

fn ends_with_caseless(t: &str, ascii: &str) -> bool {
    t.len() >= ascii.len()
        && t.as_bytes()[t.len() - ascii.len()..].eq_ignore_ascii_case(ascii.as_bytes())
}

fn contains_caseless(t: &str, ascii: &str) -> bool {
    t.as_bytes()
        .windows(ascii.len())
        .any(|w| w.eq_ignore_ascii_case(ascii.as_bytes()))
}

/// A message made ready for its n-grams, in buffers that one thread
/// reuses from one message to the next (classifying allocates nothing for
/// them once they have grown).
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    body: String,
    /// The text a classifier reads (see [`prepare`]).
    chars: Vec<char>,
    /// Its Latin-script words, as character ranges.
    words: Vec<(usize, usize)>,
}

impl Prepared {
    /// Prepare `text`, replacing what the buffers held.
    pub fn read(&mut self, text: &str) {
        body_into(text, &mut self.body);
        let chars = &mut self.chars;
        chars.clear();
        chars.push(' ');
        // The keyword helpers' normalisation, skipping the NFKC pass for
        // text that is already in NFKC (most messages; ASCII always is),
        // where it changes nothing.
        if self.body.chars().all(surely_nfkc) {
            // No case but ASCII's among them, and no NFKC change.
            fold_into(chars, self.body.chars().map(|c| c.to_ascii_lowercase()));
        } else if unicode_normalization::is_nfkc_quick(self.body.chars())
            == unicode_normalization::IsNormalized::Yes
        {
            if self.body.chars().any(char::is_uppercase) {
                fold_into(chars, self.body.to_lowercase().chars());
            } else {
                fold_into(chars, self.body.chars());
            }
        } else {
            fold_into(chars, crate::rules::normalize(&self.body).chars());
        }
        words_into(chars, &mut self.words);
    }
}

/// Characters that NFKC leaves as they are and that have no case but
/// ASCII's: ASCII, kana and the common CJK ideographs, most of what
/// customers write. A message made of them needs neither the NFKC check
/// (a table lookup per character) nor a Unicode lower-casing. A test
/// checks every one of them against the tables.
fn surely_nfkc(c: char) -> bool {
    c.is_ascii() || is_kana_or_kanji(c) || matches!(c, '、' | '。' | 'ー')
}

/// Hiragana and katakana letters, and the CJK Unified Ideographs block:
/// all letters (so alphanumeric) and NFKC-stable. Asking the Unicode
/// tables about them is the slow path of `is_alphanumeric`.
fn is_kana_or_kanji(c: char) -> bool {
    matches!(c, '\u{3041}'..='\u{3096}' | '\u{30A1}'..='\u{30FA}' | '\u{4E00}'..='\u{9FFF}')
}

/// Push normalised characters, white space and control characters folded
/// to single spaces, at most [`MAX_CHARS`], and a closing space.
fn fold_into(chars: &mut Vec<char>, normalized: impl Iterator<Item = char>) {
    for c in normalized {
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
}

/// The text a classifier reads: [`body`], normalised, white space folded,
/// at most [`MAX_CHARS`] characters, padded with one space at each end so
/// that n-grams see where words start and end.
pub fn prepare(text: &str) -> Vec<char> {
    let mut prepared = Prepared::default();
    prepared.read(text);
    prepared.chars
}

/// A character that belongs to a Latin-script word (ASCII letters and
/// digits, letters with diacritics, the apostrophe of "don't"). The range
/// is tested first: the alphabetic table is slow to ask about kana.
fn is_latin_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || c == '\''
        || (('\u{00C0}'..='\u{024F}').contains(&c) && c.is_alphabetic())
}

/// Call `f(hash, start, len, is_word)` for every feature of a prepared
/// message: `start` and `len` locate it (in characters for a character
/// n-gram; in words, over its words, for a word n-gram).
pub(crate) fn each_feature(prepared: &Prepared, mut f: impl FnMut(u64, usize, usize, bool)) {
    let chars = &prepared.chars;
    let n = chars.len();
    for i in 0..n {
        let c = chars[i];
        if !c.is_ascii() && (is_kana_or_kanji(c) || (!c.is_whitespace() && c.is_alphanumeric())) {
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
    let words = &prepared.words;
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

/// The Latin-script words of prepared text, as character ranges, in `out`.
fn words_into(chars: &[char], out: &mut Vec<(usize, usize)>) {
    out.clear();
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
}

/// The text of a feature, for explanations: `"返金"`, `"money back"`.
pub(crate) fn feature_text(prepared: &Prepared, start: usize, len: usize, is_word: bool) -> String {
    let chars = &prepared.chars;
    if is_word {
        prepared.words[start..start + len]
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
        let mut prepared = Prepared::default();
        prepared.read(text);
        let mut out = Vec::new();
        each_feature(&prepared, |_, s, l, w| {
            out.push(feature_text(&prepared, s, l, w))
        });
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

    /// What `opens_quote` was before it stopped copying each line to
    /// lower-case it.
    fn opens_quote_by_lower_case(t: &str) -> bool {
        let lower = t.to_lowercase();
        (lower.starts_with("-----") && lower.contains("original"))
            || (lower.starts_with("on ") && lower.ends_with("wrote:"))
            || lower.ends_with("書きました:")
            || lower.ends_with("書きました：")
            || lower.starts_with("from: ") && (lower.contains('@') || lower.contains("sent:"))
            || lower.starts_with("差出人:")
            || lower.starts_with("差出人：")
    }

    #[test]
    fn quote_openers_are_found_without_lower_casing() {
        for t in [
            "-----Original Message-----",
            "----- ORIGINAL message",
            "On Mon, 3 Jun 2026, Jo <jo@example.com> wrote:",
            "ON TUESDAY JO WROTE:",
            "2026年6月3日 山田 書きました:",
            "From: Jo <jo@example.com>",
            "FROM: jo Sent: Monday",
            "差出人：山田",
            "On the way",
            "orİginal ----- Kelvin K",
            "-----orİginal",
        ] {
            assert_eq!(opens_quote(t), opens_quote_by_lower_case(t), "{t:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn quote_openers_match_the_lower_cased_test(
            head in proptest::sample::select(vec!["", "-----", "On ", "oN ", "From: ", "差出人:"]),
            middle in "[a-zA-Z@:İK ]{0,12}",
            tail in proptest::sample::select(vec!["", "ORIGINAL", "wrote:", "WROTE:", "sent:", "書きました："]),
        ) {
            let t = format!("{head}{middle}{tail}");
            proptest::prop_assert_eq!(opens_quote(&t), opens_quote_by_lower_case(&t), "{:?}", t);
        }
    }

    #[test]
    fn the_fast_paths_agree_with_the_unicode_tables() {
        use unicode_normalization::{IsNormalized, is_nfkc_quick};
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            if surely_nfkc(c) {
                assert_eq!(
                    is_nfkc_quick(std::iter::once(c)),
                    IsNormalized::Yes,
                    "{c:?} {:x}",
                    c as u32
                );
                assert!(c.is_ascii() || c.to_lowercase().eq([c]), "{c:?}");
            }
            if is_kana_or_kanji(c) {
                assert!(c.is_alphanumeric() && !c.is_whitespace(), "{c:?}");
            }
        }
    }
}
