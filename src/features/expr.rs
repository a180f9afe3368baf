//! Derived-feature expressions: arithmetic over aggregate names.
//!
//! Grammar: `expr := term (('+'|'-') term)*`, `term := factor (('*'|'/') factor)*`,
//! `factor := number | name | name '(' expr (',' expr)* ')' | '(' expr ')' | '-' factor`.
//! Functions: `max`, `min` (one or more arguments), `abs`. A division by zero
//! or any non-finite result yields no value (`null` in outputs).

use std::fmt;

/// A compiled expression; variables are indices into the aggregate values.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Number(f64),
    /// The value of aggregate `i`.
    Var(usize),
    /// Negation.
    Neg(Box<Expr>),
    /// A binary operation.
    Binary(Op, Box<Expr>, Box<Expr>),
    /// A function call.
    Call(Func, Vec<Expr>),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

/// Functions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Func {
    /// Largest argument.
    Max,
    /// Smallest argument.
    Min,
    /// Absolute value.
    Abs,
}

impl Expr {
    /// Compiles `text`, resolving names with `resolve`.
    pub fn parse(text: &str, resolve: &dyn Fn(&str) -> Option<usize>) -> Result<Expr, String> {
        let tokens = tokenize(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            resolve,
        };
        let e = p.expr()?;
        if p.pos != p.tokens.len() {
            return Err(format!("unexpected `{}` in `{text}`", p.tokens[p.pos]));
        }
        Ok(e)
    }

    /// Evaluates against aggregate values; `None` when an input is missing or the result is not finite.
    pub fn eval(&self, vars: &[Option<f64>]) -> Option<f64> {
        let v = match self {
            Expr::Number(n) => *n,
            Expr::Var(i) => vars.get(*i).copied().flatten()?,
            Expr::Neg(e) => -e.eval(vars)?,
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.eval(vars)?, b.eval(vars)?);
                match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div => a / b,
                }
            }
            Expr::Call(f, args) => {
                let mut vals = args.iter().map(|a| a.eval(vars));
                match f {
                    Func::Abs => vals.next()??.abs(),
                    Func::Max => vals.try_fold(f64::NEG_INFINITY, |m, v| Some(m.max(v?)))?,
                    Func::Min => vals.try_fold(f64::INFINITY, |m, v| Some(m.min(v?)))?,
                }
            }
        };
        v.is_finite().then_some(v)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Name(String),
    Sym(char),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Num(n) => write!(f, "{n}"),
            Token::Name(s) => write!(f, "{s}"),
            Token::Sym(c) => write!(f, "{c}"),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            out.push(Token::Num(s.parse().map_err(|_| format!("bad number `{s}`"))?));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Name(chars[start..i].iter().collect()));
        } else if "+-*/(),".contains(c) {
            out.push(Token::Sym(c));
            i += 1;
        } else {
            return Err(format!("unexpected character `{c}` in `{text}`"));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    resolve: &'a dyn Fn(&str) -> Option<usize>,
}

impl Parser<'_> {
    fn peek_sym(&self, c: char) -> bool {
        matches!(self.tokens.get(self.pos), Some(Token::Sym(s)) if *s == c)
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.peek_sym(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected `{c}`"))
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let mut e = self.term()?;
        loop {
            let op = if self.peek_sym('+') {
                Op::Add
            } else if self.peek_sym('-') {
                Op::Sub
            } else {
                return Ok(e);
            };
            self.pos += 1;
            e = Expr::Binary(op, Box::new(e), Box::new(self.term()?));
        }
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut e = self.factor()?;
        loop {
            let op = if self.peek_sym('*') {
                Op::Mul
            } else if self.peek_sym('/') {
                Op::Div
            } else {
                return Ok(e);
            };
            self.pos += 1;
            e = Expr::Binary(op, Box::new(e), Box::new(self.factor()?));
        }
    }

    fn factor(&mut self) -> Result<Expr, String> {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Num(n)) => {
                self.pos += 1;
                Ok(Expr::Number(n))
            }
            Some(Token::Sym('-')) => {
                self.pos += 1;
                Ok(Expr::Neg(Box::new(self.factor()?)))
            }
            Some(Token::Sym('(')) => {
                self.pos += 1;
                let e = self.expr()?;
                self.expect(')')?;
                Ok(e)
            }
            Some(Token::Name(name)) => {
                self.pos += 1;
                if self.peek_sym('(') {
                    self.pos += 1;
                    let func = match name.as_str() {
                        "max" => Func::Max,
                        "min" => Func::Min,
                        "abs" => Func::Abs,
                        _ => return Err(format!("unknown function `{name}`; known: max, min, abs")),
                    };
                    let mut args = vec![self.expr()?];
                    while self.peek_sym(',') {
                        self.pos += 1;
                        args.push(self.expr()?);
                    }
                    self.expect(')')?;
                    if func == Func::Abs && args.len() != 1 {
                        return Err("abs takes one argument".into());
                    }
                    Ok(Expr::Call(func, args))
                } else {
                    (self.resolve)(&name)
                        .map(Expr::Var)
                        .ok_or_else(|| format!("unknown aggregate `{name}`"))
                }
            }
            Some(t) => Err(format!("unexpected `{t}`")),
            None => Err("unexpected end of expression".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &str) -> Option<usize> {
        ["kills", "deaths", "assists", "wins", "games"]
            .iter()
            .position(|x| *x == n)
    }

    #[test]
    fn kda_and_win_rate() {
        let kda = Expr::parse("(kills + assists) / max(1, deaths)", &names).unwrap();
        let v = [Some(3.0), Some(0.0), Some(5.0), Some(2.0), Some(4.0)];
        assert_eq!(kda.eval(&v), Some(8.0));
        let v2 = [Some(3.0), Some(4.0), Some(5.0), Some(2.0), Some(4.0)];
        assert_eq!(kda.eval(&v2), Some(2.0));
        let wr = Expr::parse("wins / games", &names).unwrap();
        assert_eq!(wr.eval(&v), Some(0.5));
        assert_eq!(Expr::parse("-kills * 2 - 1", &names).unwrap().eval(&v), Some(-7.0));
    }

    #[test]
    fn division_by_zero_is_no_value_and_errors_are_clear() {
        let e = Expr::parse("wins / deaths", &names).unwrap();
        assert_eq!(e.eval(&[Some(1.0), Some(0.0), None, Some(1.0), None]), None);
        assert!(Expr::parse("kils + 1", &names).unwrap_err().contains("kils"));
        assert!(Expr::parse("pow(kills)", &names).unwrap_err().contains("pow"));
        assert!(Expr::parse("(kills", &names).is_err());
    }
}
