//! Why an expression was refused, and where: [`ParseError`], and its rendering as tshark prints
//! one, the message over the expression with a caret line under the fault.

use crate::ast::Span;

/// Why an expression was rejected, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// What is wrong, in tshark's words where tshark has words for it.
    pub message: String,
    /// The offending text; `None` when the expression ended too early.
    pub span: Option<Span>,
}

impl ParseError {
    pub(super) fn at(span: Span, message: String) -> ParseError {
        ParseError { message, span: Some(span) }
    }

    /// The message, then the expression with a caret line under the fault, as tshark prints it:
    ///
    /// ```text
    /// "8080" was unexpected in this context.
    ///     tcp.port in {80 8080}
    ///                     ^~~~
    /// ```
    ///
    /// An expression of several lines, or longer than [`SHOWN_CHARS`], is shown as the part
    /// of the fault's line around it, cut ends marked `…`: whole, the caret of a fault far
    /// into it fell past what a message shows of a line.
    pub fn render(&self, expr: &str) -> String {
        let Some(span) = self.span else { return self.message.clone() };
        let (line, at, width) = Self::around(expr, span).unwrap_or_else(|| {
            let at = expr.get(..span.start).map_or(0, |s| s.chars().count());
            (expr.to_string(), at, expr.get(span.start..span.end).map_or(1, |s| s.chars().count()))
        });
        // A tab before the fault is copied into the caret line, so the caret stays under the
        // fault however wide the terminal draws a tab (tshark pads with spaces and drifts).
        let pad: String = line.chars().take(at).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        format!("{}\n    {}\n    {}^{}", self.message, line, pad, "~".repeat(width.max(1) - 1))
    }

    /// The shown part of a long or multi-line `expr` around `span`, the column of the
    /// fault's first character in it and the fault's width; `None` to show `expr` whole.
    fn around(expr: &str, span: Span) -> Option<(String, usize, usize)> {
        if !expr.contains('\n') && expr.chars().count() <= SHOWN_CHARS {
            return None;
        }
        let start = span.start.min(expr.len());
        let line_start = expr.get(..start)?.rfind('\n').map_or(0, |i| i + 1);
        let line_end = expr.get(start..)?.find('\n').map_or(expr.len(), |i| start + i);
        let end = span.end.clamp(start, line_end);
        let (before, fault, after) = (expr.get(line_start..start)?, expr.get(start..end)?, expr.get(end..line_end)?);
        let half = SHOWN_CHARS / 2;
        let kept_before: String = {
            let n = before.chars().count();
            let tail: String = before.chars().skip(n.saturating_sub(half)).collect();
            if n > half { format!("…{tail}") } else { tail }
        };
        let kept_after: String = {
            let head: String = after.chars().take(half).collect();
            if after.chars().count() > half { format!("{head}…") } else { head }
        };
        let at = kept_before.chars().count();
        Some((format!("{kept_before}{fault}{kept_after}"), at, fault.chars().count()))
    }
}

/// The most of an expression's line an error shows (tshark's expressions are typed at a
/// prompt; a configuration's may be a screenful).
const SHOWN_CHARS: usize = 120;

pub(super) fn end_of_input() -> ParseError {
    ParseError { message: "Unexpected end of filter expression.".into(), span: None }
}

#[cfg(test)]
mod tests {
    use super::super::tests::err;
    use crate::parse::parse;

    /// A fault far into a long expression, or on a later line of a multi-line one, is shown
    /// with the part of its line around it and the caret under it (the whole expression
    /// was shown, cut at 1,000 characters in the configuration's message: the caret of a
    /// fault past that was lost).
    #[test]
    fn a_fault_far_into_a_long_expression_is_shown_with_its_surroundings() {
        let terms: Vec<String> = (0..100).map(|i| format!("ip.ttl == {i}")).collect();
        let text = format!("{} or ip.ttl == 300 or ip.ttl == 7", terms.join(" or "));
        let shown = parse(&text).unwrap_err().render(&text);
        let lines: Vec<&str> = shown.lines().collect();
        assert!(lines[1].starts_with("    …") && lines[1].ends_with("ip.ttl == 300 or ip.ttl == 7"), "{shown}");
        let caret = lines[2].find('^').unwrap();
        assert_eq!(&lines[1][lines[1].char_indices().nth(lines[2][..caret].chars().count()).unwrap().0..][..3], "300");
        assert!(lines[2].ends_with("^~~"), "{shown}");
        // A later line of several: that line alone.
        let multi = "tcp\n  and ip.ttl == 300\n  and udp";
        let shown = parse(multi).unwrap_err().render(multi);
        assert_eq!(shown.lines().skip(1).collect::<Vec<_>>(), ["      and ip.ttl == 300", "                    ^~~"]);
    }

    /// tshark prints a tab in the expression as it is and pads its caret line with one space
    /// for it, so a terminal drawing the tab wide leaves the caret short of the fault; the
    /// caret line carries the tab instead.
    #[test]
    fn a_tab_before_the_fault_is_carried_into_the_caret_line() {
        let shown = err("tcp.port\tin {80 8080}");
        assert_eq!(
            shown.lines().skip(1).collect::<Vec<_>>(),
            ["    tcp.port\tin {80 8080}", "            \t       ^~~~"]
        );
    }

    #[test]
    fn errors_point_at_the_fault_like_tshark() {
        // The exact texts tshark 4.0.17 prints for these expressions.
        assert_eq!(
            err("tcp.port == 0x1ffff"),
            "\"0x1ffff\" too big for this field, maximum 65535.\n    tcp.port == 0x1ffff\n                ^~~~~~~"
        );
        assert_eq!(err("tcp)"), "\")\" was unexpected in this context.\n    tcp)\n       ^");
        assert_eq!(err("tcp.port ==").as_str(), "Unexpected end of filter expression.");
        assert_eq!(
            err("tcp.flags.syn == true"),
            "\"true\" cannot be found among the possible values for tcp.flags.syn.\n    tcp.flags.syn == true\n                     ^~~~"
        );
        assert!(err("tcp.port in {80 8080}").contains("separated by commas"));
        assert!(
            err("ip.src == 10.0.0.0/33").starts_with("Netmask bits in a CIDR IPv4 address should be <= 32, not 33")
        );
        assert!(err("foo.bar").starts_with("foo.bar is neither a field nor a protocol name."));
        assert_eq!(
            err("tcp.len == 18446744073709551616"),
            "\"18446744073709551616\" causes an integer overflow.\n    tcp.len == 18446744073709551616\n               ^~~~~~~~~~~~~~~~~~~~"
        );
    }
}
