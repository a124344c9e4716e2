//! The pages' words in Chinese (the default) and English, chosen by `Accept-Language`.

/// Every word a page shows.
#[derive(Debug)]
pub struct Texts {
    pub lang: &'static str,
    pub title: &'static str,
    pub sign_in: &'static str,
    pub sign_in_key: &'static str,
    pub sign_in_name: &'static str,
    pub sign_in_open_note: &'static str,
    pub sign_in_failed: &'static str,
    pub sign_out: &'static str,
    pub signed_in_as: &'static str,
    pub queue: &'static str,
    pub status: &'static str,
    pub any: &'static str,
    pub open: &'static str,
    pub upheld: &'static str,
    pub reassigned: &'static str,
    pub store: &'static str,
    pub guide: &'static str,
    pub claimant: &'static str,
    pub age: &'static str,
    pub older_than_days: &'static str,
    pub apply: &'static str,
    pub none_found: &'static str,
    pub dispute: &'static str,
    pub order: &'static str,
    pub member: &'static str,
    pub claimed_owner: &'static str,
    pub owner_at_open: &'static str,
    pub owner_now: &'static str,
    pub opened_by: &'static str,
    pub reason: &'static str,
    pub amount: &'static str,
    pub refunded: &'static str,
    pub rule: &'static str,
    pub version: &'static str,
    pub why: &'static str,
    pub chain: &'static str,
    pub chain_ok: &'static str,
    pub chain_broken: &'static str,
    pub trail: &'static str,
    pub deciding: &'static str,
    pub rule_sets: &'static str,
    pub would_own: &'static str,
    pub decisions: &'static str,
    pub alternatives: &'static str,
    pub score: &'static str,
    pub split: &'static str,
    pub party: &'static str,
    pub role: &'static str,
    pub net: &'static str,
    pub refunds: &'static str,
    pub adjustments: &'static str,
    pub resolve: &'static str,
    pub uphold: &'static str,
    pub reassign_to: &'static str,
    pub correct_binding: &'static str,
    pub reason_required: &'static str,
    pub preview: &'static str,
    pub preview_title: &'static str,
    pub no_entries: &'static str,
    pub confirm: &'static str,
    pub back: &'static str,
    pub resolved_by: &'static str,
    pub done: &'static str,
    pub stale: &'static str,
    pub refused: &'static str,
    pub back_to_queue: &'static str,
    pub at: &'static str,
    pub event: &'static str,
    pub days: &'static str,
    pub lead: &'static str,
}

pub const ZH: Texts = Texts {
    lang: "zh-CN",
    title: "争议复核",
    sign_in: "登录",
    sign_in_key: "复核密钥",
    sign_in_name: "复核人",
    sign_in_open_note: "本服务未启用密钥（仅本机）：填写您的名字即可。",
    sign_in_failed: "密钥无效、已吊销，或不是复核人的密钥。",
    sign_out: "退出",
    signed_in_as: "当前复核人",
    queue: "争议队列",
    status: "状态",
    any: "全部",
    open: "待处理",
    upheld: "维持原判",
    reassigned: "已改判",
    store: "门店",
    guide: "导购",
    claimant: "申诉方",
    age: "已开启",
    older_than_days: "超过（天）",
    apply: "筛选",
    none_found: "没有符合条件的争议。",
    dispute: "争议",
    order: "订单",
    member: "会员",
    claimed_owner: "主张归属",
    owner_at_open: "开启时归属",
    owner_now: "当前归属",
    opened_by: "提出人",
    reason: "理由",
    amount: "金额",
    refunded: "已退款",
    rule: "规则",
    version: "版本",
    why: "说明",
    chain: "轨迹校验",
    chain_ok: "哈希链完整，归属与分账可复算一致",
    chain_broken: "校验失败",
    trail: "会员轨迹",
    deciding: "决定归属",
    rule_sets: "各规则集的归属",
    would_own: "归属",
    decisions: "分配记录",
    alternatives: "备选",
    score: "得分",
    split: "分账",
    party: "对象",
    role: "角色",
    net: "净额",
    refunds: "退款",
    adjustments: "此前的调整",
    resolve: "处理争议",
    uphold: "维持原判",
    reassign_to: "改判给",
    correct_binding: "同时将会员绑定到该导购",
    reason_required: "处理理由（必填）",
    preview: "预览调整分录",
    preview_title: "确认前请核对将写入的冲正分录",
    no_entries: "不产生分录（维持原判，或归属已无余额）。",
    confirm: "确认处理",
    back: "返回修改",
    resolved_by: "处理人",
    done: "已处理。",
    stale: "该争议已被他人更改，您的表单已过期，未作任何修改。当前状态如下：",
    refused: "未能处理",
    back_to_queue: "返回队列",
    at: "时间",
    event: "事件",
    days: "天",
    lead: "线索",
};

pub const EN: Texts = Texts {
    lang: "en",
    title: "Dispute review",
    sign_in: "Sign in",
    sign_in_key: "Reviewer key",
    sign_in_name: "Reviewer",
    sign_in_open_note: "This service runs without keys (loopback only): give your name.",
    sign_in_failed: "The key is unknown, revoked, or not a reviewer's.",
    sign_out: "Sign out",
    signed_in_as: "Signed in as",
    queue: "Disputes",
    status: "Status",
    any: "Any",
    open: "Open",
    upheld: "Upheld",
    reassigned: "Reassigned",
    store: "Store",
    guide: "Guide",
    claimant: "Claimant",
    age: "Open for",
    older_than_days: "More than (days)",
    apply: "Apply",
    none_found: "No dispute matches.",
    dispute: "Dispute",
    order: "Order",
    member: "Member",
    claimed_owner: "Claimed owner",
    owner_at_open: "Owner when opened",
    owner_now: "Owner now",
    opened_by: "Opened by",
    reason: "Reason",
    amount: "Amount",
    refunded: "Refunded",
    rule: "Rule",
    version: "Version",
    why: "Why",
    chain: "Trail check",
    chain_ok: "The hash chain holds; owner and split recompute the same",
    chain_broken: "Check failed",
    trail: "Member's trail",
    deciding: "deciding",
    rule_sets: "What every rule set would decide",
    would_own: "Owner",
    decisions: "Routing decisions",
    alternatives: "Alternatives",
    score: "Score",
    split: "Split",
    party: "Party",
    role: "Role",
    net: "Net",
    refunds: "Refunds",
    adjustments: "Earlier adjustments",
    resolve: "Resolve",
    uphold: "Uphold",
    reassign_to: "Reassign to",
    correct_binding: "Also bind the member to that guide",
    reason_required: "Reason (required)",
    preview: "Preview the entries",
    preview_title: "Check the compensating entries before confirming",
    no_entries: "No entries (upheld, or no owner credit left to move).",
    confirm: "Confirm",
    back: "Back",
    resolved_by: "Resolved by",
    done: "Resolved.",
    stale: "Someone else changed this dispute; your form is stale and nothing was changed. It stands now as follows:",
    refused: "Not resolved",
    back_to_queue: "Back to the queue",
    at: "At",
    event: "Event",
    days: "days",
    lead: "Lead",
};

/// Chinese unless the caller prefers English (`Accept-Language`, by q-value, then order).
pub fn for_accept_language(header: Option<&str>) -> &'static Texts {
    let Some(h) = header else {
        return &ZH;
    };
    let mut best: Option<(f32, &'static Texts)> = None;
    for part in h.split(',') {
        let mut it = part.split(';');
        let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = it
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|v| v.parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        let texts = if tag.starts_with("en") {
            &EN
        } else if tag.starts_with("zh") {
            &ZH
        } else {
            continue;
        };
        if best.is_none_or(|(b, _)| q > b) {
            best = Some((q, texts));
        }
    }
    best.map_or(&ZH, |(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_by_default_english_when_preferred() {
        assert_eq!(for_accept_language(None).lang, "zh-CN");
        assert_eq!(for_accept_language(Some("fr-FR,fr")).lang, "zh-CN");
        assert_eq!(for_accept_language(Some("en-US,en;q=0.9")).lang, "en");
        assert_eq!(for_accept_language(Some("zh-CN,en;q=0.8")).lang, "zh-CN");
        assert_eq!(for_accept_language(Some("zh;q=0.5,en;q=0.9")).lang, "en");
    }
}
