//! Just enough Rust lexing to find module paths: comments, string and char
//! literals are blanked out, and `#[cfg(test)]` items are dropped, so only
//! code that ships leaves edges.

/// `src` with comments and literal contents replaced by spaces (newlines
/// kept) and every `#[cfg(test)]`-gated item removed.
pub fn code_only(src: &str) -> String {
    drop_test_items(&blank_comments_and_literals(src))
}

fn blank_comments_and_literals(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < b.len() {
        let next = b.get(i + 1).copied();
        if b[i] == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if b[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if b[i] == 'r' && matches!(next, Some('"' | '#')) && !ident_before(&b, i) {
            // Raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(b[i]);
                i += 1;
                continue;
            }
            j += 1;
            while j < b.len() {
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push('"');
            out.extend(b[i + 1..j.min(b.len())].iter().skip(1).map(|&c| blank(c)));
            i = j;
        } else if b[i] == '"' {
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if b[i] == '\'' && (next == Some('\\') || b.get(i + 2) == Some(&'\'')) {
            // Char literal ('x', '\n', '\''); a lifetime has no closing quote.
            let mut j = i + 1;
            if b[j] == '\\' {
                j += 2;
            } else {
                j += 1;
            }
            while j < b.len() && b[j] != '\'' {
                j += 1;
            }
            out.push_str("' '");
            i = j + 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// Removes each `#[cfg(test)]` attribute and the item after it (up to its
/// closing brace or semicolon).
fn drop_test_items(code: &str) -> String {
    const ATTR: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find(ATTR) {
        out.push_str(&rest[..at]);
        let item = &rest[at + ATTR.len()..];
        let mut depth = 0usize;
        let mut end = item.len();
        for (k, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_literals_and_test_items_leave_no_code() {
        let src = r####"
use crate::a; // crate::b
/* crate::c /* nested crate::d */ */
const S: &str = "crate::e \" crate::f";
const R: &str = r#"crate::g " still"#;
const C: char = '"';
fn f<'x>(v: &'x str) { crate::h::go() }
#[cfg(test)]
mod tests { fn t() { crate::i::x(); { crate::j::y() } } }
#[cfg(test)]
use crate::k;
fn g() { crate::l::run() }
"####;
        let code = code_only(src);
        for gone in ["crate::b", "crate::c", "crate::d", "crate::e", "crate::f"] {
            assert!(!code.contains(gone), "{gone} left in:\n{code}");
        }
        for gone in ["crate::g", "crate::i", "crate::j", "crate::k"] {
            assert!(!code.contains(gone), "{gone} left in:\n{code}");
        }
        for kept in ["crate::a", "crate::h::go", "crate::l::run", "fn f<'x>"] {
            assert!(code.contains(kept), "{kept} missing from:\n{code}");
        }
    }
}
