//! Money as people read it. Amounts are integer cents everywhere; this only formats them.

/// Cents as yuan with thousands grouped: `¥1,234.56`, `-¥0.05`.
pub fn yuan(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    let whole = (c / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{sign}¥{grouped}.{:02}", c % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_as_yuan() {
        assert_eq!(yuan(0), "¥0.00");
        assert_eq!(yuan(5), "¥0.05");
        assert_eq!(yuan(-5), "-¥0.05");
        assert_eq!(yuan(123_456_789), "¥1,234,567.89");
        assert_eq!(yuan(100_000), "¥1,000.00");
        assert_eq!(yuan(i64::MIN), "-¥92,233,720,368,547,758.08");
    }
}
