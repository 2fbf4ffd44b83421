//! The console's own words in English and Japanese. A page is drawn in
//! Japanese when `?lang=ja` says so or the browser's `Accept-Language`
//! puts Japanese before English; customer text, names from the pack
//! (states, teams) and rule output stay as written.

/// A language the console speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    /// `?lang=` first, then the first of Japanese or English in
    /// `Accept-Language` (quality values are in the browser's order).
    pub fn choose(query: &[(String, String)], headers: &[(String, String)]) -> Lang {
        if let Some((_, v)) = query.iter().find(|(k, _)| k == "lang") {
            return if v.starts_with("ja") {
                Lang::Ja
            } else {
                Lang::En
            };
        }
        let accept = headers
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case("Accept-Language"))
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        for tag in accept.split(',') {
            let tag = tag
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if tag.starts_with("ja") {
                return Lang::Ja;
            }
            if tag.starts_with("en") {
                return Lang::En;
            }
        }
        Lang::En
    }
}

/// English → Japanese for every phrase the templates pass through `t`.
const JA: &[(&str, &str)] = &[
    ("Queue", "キュー"),
    ("Promises at risk", "危ない約束"),
    ("Workflow", "ワークフロー"),
    ("Try a message", "メッセージを試す"),
    ("open cases", "件の未完了ケース"),
    ("of", "/"),
    ("Teams", "チーム"),
    ("States", "状態"),
    ("Team", "チーム"),
    ("State", "状態"),
    ("Urgency", "緊急度"),
    ("Channel", "チャネル"),
    ("Search", "検索"),
    ("Filter", "絞り込む"),
    ("all", "すべて"),
    (
        "case, customer, e-mail, order, tracking",
        "ケース、顧客、メール、注文、追跡番号",
    ),
    ("Case", "ケース"),
    ("Customer", "顧客"),
    ("Promise", "約束"),
    ("SLA left", "SLA 残り"),
    ("Last contact", "最終連絡"),
    (
        "No open case matches.",
        "該当する未完了ケースはありません。",
    ),
    ("Opened", "受付"),
    ("in this state since", "この状態になった時刻"),
    ("no team", "チーム未定"),
    ("hand-offs", "回の引き継ぎ"),
    ("Name", "名前"),
    ("E-mail", "メール"),
    ("Phone", "電話"),
    ("Prefers", "希望の連絡方法"),
    ("not said", "指定なし"),
    ("Other cases", "この顧客の他のケース"),
    ("Orders", "注文"),
    ("Handoff record", "引き継ぎ記録"),
    ("Who", "連絡者"),
    ("When", "日時"),
    ("Taken by", "受付担当"),
    ("Complaint", "内容"),
    ("Proposed", "提案した解決策"),
    ("Landed", "現在の担当"),
    ("Committed", "約束したこと"),
    ("Handled by", "担当の履歴"),
    ("SLA and tasks", "SLA とタスク"),
    ("No SLA clock.", "SLA はありません。"),
    ("Open tasks", "未完了のタスク"),
    ("left", "残り"),
    ("business time", "営業時間"),
    ("Promises", "約束"),
    ("No promise made.", "約束はまだありません。"),
    ("made by", "約束した人"),
    ("Timeline", "経緯"),
    (
        "every contact, every channel",
        "すべての連絡、すべてのチャネル",
    ),
    ("Outbox", "送信待ち"),
    ("Action", "アクション"),
    ("Status", "状況"),
    ("Attempts", "試行回数"),
    ("Last error", "最後のエラー"),
    ("Asked by", "依頼元"),
    (
        "Nothing asked of the plugins.",
        "プラグインへの依頼はありません。",
    ),
    ("Decisions", "判断"),
    ("inputs", "入力"),
    ("Why", "理由"),
    ("Requested", "依頼済み"),
    ("nothing yet", "まだありません"),
    (
        "Every open promise is on track.",
        "未完了の約束はすべて順調です。",
    ),
    ("the usual path", "通常の流れ"),
    ("a timeout", "時間切れ"),
    ("Rules in force", "有効なルール"),
    ("transitions", "遷移"),
    ("Message", "メッセージ"),
    ("Kind", "種類"),
    ("On case", "対象ケース"),
    ("a new case if empty", "空なら新しいケース"),
    ("Customer name", "顧客名"),
    ("Customer e-mail", "顧客のメール"),
    ("Try it", "試す"),
    (
        "Paste what the customer wrote",
        "お客様の文面を貼り付けてください",
    ),
    (
        "a dry run with the rules in force; nothing is stored",
        "有効なルールでの試行です。何も保存されません",
    ),
    ("What would happen", "こうなります"),
    ("a new case", "新しいケース"),
    ("would be opened", "作成されます"),
    ("Decisions, with the rule lines", "判断とルールの行"),
    ("Actions it would ask for", "依頼されるアクション"),
    ("none", "なし"),
    ("score", "スコア"),
    ("Sign in", "サインイン"),
    ("Token", "トークン"),
    ("Back to the queue", "キューに戻る"),
    ("live", "自動更新中"),
    ("cases", "件"),
];

/// `text` in `lang` (English text is its own translation; a phrase with
/// no Japanese stays English rather than disappearing).
pub fn translate(text: &str, lang: &str) -> String {
    if lang == "ja"
        && let Some((_, ja)) = JA.iter().find(|(en, _)| *en == text)
    {
        return (*ja).to_owned();
    }
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> Vec<(String, String)> {
        vec![("Accept-Language".to_owned(), v.to_owned())]
    }

    #[test]
    fn the_language_follows_the_query_then_the_browser() {
        assert_eq!(Lang::choose(&[], &h("ja-JP,ja;q=0.9,en;q=0.8")), Lang::Ja);
        assert_eq!(Lang::choose(&[], &h("en-US,ja;q=0.5")), Lang::En);
        assert_eq!(Lang::choose(&[], &h("fr-FR,ja;q=0.5")), Lang::Ja);
        assert_eq!(Lang::choose(&[], &[]), Lang::En);
        let q = [("lang".to_owned(), "en".to_owned())];
        assert_eq!(Lang::choose(&q, &h("ja")), Lang::En);
    }

    #[test]
    fn phrases_are_translated_and_unknown_ones_kept() {
        assert_eq!(translate("Queue", "ja"), "キュー");
        assert_eq!(translate("Queue", "en"), "Queue");
        assert_eq!(translate("no such phrase", "ja"), "no such phrase");
        let mut seen = std::collections::HashSet::new();
        assert!(
            JA.iter().all(|(en, _)| seen.insert(*en)),
            "one entry per phrase"
        );
    }
}
