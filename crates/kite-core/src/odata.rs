//! OData `$filter` as ARM and Microsoft Graph clients send it: clauses joined by `and`, each one of
//! `prop eq 'v'`, `prop in ('a','b')`, `coll/any(x:x eq 'v')` or a call such as `atScope()`,
//! `assignedTo('id')`, `startswith(displayName,'v')`. The caller decides which clauses it
//! understands; anything else, `or` and `not` included, is refused with where and what was seen.

use crate::{Error, Result};

/// The longest filter read, and the most values one `in (…)` takes.
pub const MAX_FILTER_LEN: usize = 4096;
pub const MAX_IN_VALUES: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    Property(String),
    Literal(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clause {
    /// `property eq 'value'`
    Eq(String, String),
    /// `property in ('a', 'b')`
    In(String, Vec<String>),
    /// `collection/any(x:x eq 'value')`
    AnyEq(String, String),
    /// `name(args…)`, e.g. `atScope()`, `assignedTo('…')`, `startswith(displayName,'…')`
    Call(String, Vec<Term>),
}

impl Clause {
    /// The clause as a filter would spell it, for error messages.
    pub fn describe(&self) -> String {
        let quote = |v: &str| format!("'{}'", v.replace('\'', "''"));
        match self {
            Clause::Eq(p, v) => format!("{p} eq {}", quote(v)),
            Clause::In(p, vs) => format!("{p} in ({})", vs.iter().map(|v| quote(v)).collect::<Vec<_>>().join(",")),
            Clause::AnyEq(c, v) => format!("{c}/any(x:x eq {})", quote(v)),
            Clause::Call(n, args) => {
                let args: Vec<String> = args
                    .iter()
                    .map(|a| match a {
                        Term::Property(p) => p.clone(),
                        Term::Literal(v) => quote(v),
                    })
                    .collect();
                format!("{n}({})", args.join(","))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Ident(String),
    Str(String),
    Open,
    Close,
    Comma,
    Colon,
    Slash,
}

fn invalid(filter: &str, what: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("Invalid $filter '{filter}': {what}"))
}

fn tokenize(filter: &str) -> Result<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = filter.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            ',' => out.push(Token::Comma),
            ':' => out.push(Token::Colon),
            '/' => out.push(Token::Slash),
            '\'' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\'')) if chars.peek().is_some_and(|(_, n)| *n == '\'') => {
                            chars.next();
                            value.push('\'');
                        }
                        Some((_, '\'')) => break,
                        Some((_, ch)) => value.push(ch),
                        None => return Err(invalid(filter, format!("the string starting at character {at} is not closed with '"))),
                    }
                }
                out.push(Token::Str(value));
            }
            c if c.is_alphanumeric() || c == '_' || c == '-' || c == '.' => {
                let mut ident = String::from(c);
                while let Some((_, n)) = chars.peek().copied().filter(|(_, n)| n.is_alphanumeric() || *n == '_' || *n == '-' || *n == '.') {
                    ident.push(n);
                    chars.next();
                }
                out.push(Token::Ident(ident));
            }
            other => return Err(invalid(filter, format!("unexpected {other:?} at character {at}"))),
        }
    }
    Ok(out)
}

struct Parser<'a> {
    filter: &'a str,
    tokens: Vec<Token>,
    at: usize,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn expect(&mut self, want: &Token, what: &str) -> Result<()> {
        match self.next() {
            Some(t) if t == *want => Ok(()),
            got => Err(self.unexpected(got, what)),
        }
    }

    fn keyword(&mut self, word: &str) -> Result<()> {
        match self.next() {
            Some(Token::Ident(w)) if w.eq_ignore_ascii_case(word) => Ok(()),
            got => Err(self.unexpected(got, &format!("'{word}'"))),
        }
    }

    fn string(&mut self) -> Result<String> {
        match self.next() {
            Some(Token::Str(s)) => Ok(s),
            got => Err(self.unexpected(got, "a quoted value ('…')")),
        }
    }

    fn unexpected(&self, got: Option<Token>, want: &str) -> Error {
        let seen = match got {
            None => "the end".to_string(),
            Some(Token::Ident(w)) => format!("'{w}'"),
            Some(Token::Str(s)) => format!("the value '{s}'"),
            Some(t) => format!("{t:?}").to_lowercase(),
        };
        invalid(self.filter, format!("expected {want}, found {seen}"))
    }

    fn clause(&mut self) -> Result<Clause> {
        let name = match self.next() {
            Some(Token::Ident(name)) => name,
            got => return Err(self.unexpected(got, "a property or function name")),
        };
        match self.next() {
            Some(Token::Open) => {
                let mut args = Vec::new();
                if self.peek() == Some(&Token::Close) {
                    self.next();
                    return Ok(Clause::Call(name, args));
                }
                loop {
                    args.push(match self.next() {
                        Some(Token::Ident(p)) => Term::Property(p),
                        Some(Token::Str(s)) => Term::Literal(s),
                        got => return Err(self.unexpected(got, "an argument")),
                    });
                    match self.next() {
                        Some(Token::Comma) => {}
                        Some(Token::Close) => return Ok(Clause::Call(name, args)),
                        got => return Err(self.unexpected(got, "',' or ')'")),
                    }
                }
            }
            Some(Token::Slash) => {
                self.keyword("any")?;
                self.expect(&Token::Open, "'('")?;
                let var = match self.next() {
                    Some(Token::Ident(v)) => v,
                    got => return Err(self.unexpected(got, "a lambda variable")),
                };
                self.expect(&Token::Colon, "':'")?;
                match self.next() {
                    Some(Token::Ident(v)) if v == var => {}
                    got => return Err(self.unexpected(got, &format!("the lambda variable '{var}'"))),
                }
                self.keyword("eq")?;
                let value = self.string()?;
                self.expect(&Token::Close, "')'")?;
                Ok(Clause::AnyEq(name, value))
            }
            Some(Token::Ident(op)) if op.eq_ignore_ascii_case("eq") => Ok(Clause::Eq(name, self.string()?)),
            Some(Token::Ident(op)) if op.eq_ignore_ascii_case("in") => {
                self.expect(&Token::Open, "'('")?;
                let mut values = vec![self.string()?];
                loop {
                    match self.next() {
                        Some(Token::Comma) => values.push(self.string()?),
                        Some(Token::Close) => break,
                        got => return Err(self.unexpected(got, "',' or ')'")),
                    }
                    if values.len() > MAX_IN_VALUES {
                        return Err(invalid(self.filter, format!("'in' takes at most {MAX_IN_VALUES} values")));
                    }
                }
                Ok(Clause::In(name, values))
            }
            got => Err(self.unexpected(got, "'eq', 'in', '/any(…)' or '('")),
        }
    }
}

/// The clauses of a filter, all of which must hold.
pub fn parse(filter: &str) -> Result<Vec<Clause>> {
    if filter.len() > MAX_FILTER_LEN {
        return Err(Error::InvalidArgument(format!("Invalid $filter: it has {} characters; at most {MAX_FILTER_LEN} are read", filter.len())));
    }
    let mut parser = Parser { filter, tokens: tokenize(filter)?, at: 0 };
    let mut clauses = vec![parser.clause()?];
    while parser.peek().is_some() {
        parser.keyword("and")?;
        clauses.push(parser.clause()?);
    }
    Ok(clauses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_az_sends_parse_into_their_clauses() {
        assert_eq!(parse("roleName eq 'Managed Identity Operator'").unwrap(), vec![Clause::Eq("roleName".into(), "Managed Identity Operator".into())]);
        assert_eq!(
            parse("atScope() and assignedTo('0b7f')").unwrap(),
            vec![Clause::Call("atScope".into(), vec![]), Clause::Call("assignedTo".into(), vec![Term::Literal("0b7f".into())])]
        );
        assert_eq!(parse("servicePrincipalNames/any(c:c eq 'http://x')").unwrap(), vec![Clause::AnyEq("servicePrincipalNames".into(), "http://x".into())]);
        assert_eq!(
            parse("startswith(displayName,'my sp')").unwrap(),
            vec![Clause::Call("startswith".into(), vec![Term::Property("displayName".into()), Term::Literal("my sp".into())])]
        );
        assert_eq!(parse("id in ('a', 'b')").unwrap(), vec![Clause::In("id".into(), vec!["a".into(), "b".into()])]);
        assert_eq!(parse("displayName eq 'O''Brien'").unwrap(), vec![Clause::Eq("displayName".into(), "O'Brien".into())]);
    }

    #[test]
    fn what_is_not_understood_is_refused_with_what_was_seen() {
        for (filter, says) in [
            ("roleName eq 'Reader' or type eq 'x'", "expected 'and', found 'or'"),
            ("roleName ne 'Reader'", "found 'ne'"),
            ("roleName eq 'Reader", "not closed"),
            ("roleName eq Reader", "a quoted value"),
            ("c/any(x:y eq 'v')", "the lambda variable 'x'"),
            ("", "found the end"),
            ("a eq 'b' ;", "unexpected ';'"),
        ] {
            let e = parse(filter).unwrap_err().to_string();
            assert!(e.contains(says), "{filter}: {e}");
        }
        assert!(parse(&"a".repeat(MAX_FILTER_LEN + 1)).unwrap_err().to_string().contains("at most"));
        let many = (0..=MAX_IN_VALUES).map(|i| format!("'{i}'")).collect::<Vec<_>>().join(",");
        assert!(parse(&format!("id in ({many})")).unwrap_err().to_string().contains("at most"));
    }

    #[test]
    fn describe_spells_a_clause_back() {
        for f in ["roleName eq 'a''b'", "atScope()", "startswith(displayName,'x')", "id in ('a','b')"] {
            assert_eq!(parse(f).unwrap()[0].describe(), f);
        }
    }
}
