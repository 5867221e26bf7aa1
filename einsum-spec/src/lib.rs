//! The grammar of an einsum spec (`"bij,bjk->bik"`, NumPy's and JAX's), in one place for
//! the two that read it: `ferrax-macros`, which checks a literal spec at compile time and
//! reports a malformed one at its span, and `ferrax-runtime`, which evaluates it.
//!
//! A spec is one term per operand, separated by `,`, then optionally `->` and the output's
//! term. A term is letters (any alphabetic character), one per axis, and at most one
//! `...` standing for any number of axes; whitespace is ignored. Without `->` the output
//! is the letters written exactly once, sorted (after `...` where an operand has one).
//!
//! ```
//! use ferrax_einsum_spec::Spec;
//! let s = Spec::parse("ba,cb", 2).unwrap();
//! assert_eq!(s.to_string(), "ba,cb->ac");
//! assert_eq!(Spec::parse("ij->k", 1).unwrap_err(), "the output's `k` is in no operand's term");
//! ```

use std::fmt;

/// One side of a spec: its letters, and where `...` stands among them (`Some(i)`: before
/// letter `i`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    /// The letters, one per axis `...` does not cover.
    pub letters: Vec<char>,
    /// Where `...` stands: before `letters[i]`, or at the end for `letters.len()`.
    pub ellipsis: Option<usize>,
}

impl Term {
    fn parse(t: &str) -> Result<Term, String> {
        let mut letters = Vec::new();
        let mut ellipsis = None;
        let mut chars = t.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '.' {
                let dots = 1 + (0..2).filter(|_| chars.next_if_eq(&'.').is_some()).count();
                if dots != 3 {
                    return Err("a `.` outside `...`".into());
                }
                if ellipsis.replace(letters.len()).is_some() {
                    return Err(format!("`...` twice in the term `{t}`"));
                }
            } else if c.is_alphabetic() {
                letters.push(c);
            } else {
                return Err(format!(
                    "`{c}` is not a letter (terms are letters and `...`, separated by `,`, then `->` and the output's)"
                ));
            }
        }
        Ok(Term { letters, ellipsis })
    }

    /// The term with `letter` in front (before `...` too).
    fn with_front(&mut self, letter: char) {
        self.letters.insert(0, letter);
        if let Some(e) = &mut self.ellipsis {
            *e += 1;
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.letters.iter().enumerate() {
            if self.ellipsis == Some(i) {
                f.write_str("...")?;
            }
            write!(f, "{c}")?;
        }
        if self.ellipsis == Some(self.letters.len()) {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// A parsed spec: a term per operand, and the output's, made explicit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// One term per operand.
    pub inputs: Vec<Term>,
    /// The output's term (computed where the spec has no `->`).
    pub output: Term,
}

impl Spec {
    /// Parses `spec` for `n` operands; the error says what is wrong (without naming the
    /// spec, which the caller adds).
    pub fn parse(spec: &str, n: usize) -> Result<Spec, String> {
        let s: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
        let (lhs, rhs) = match s.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (s.as_str(), None),
        };
        if rhs.is_some_and(|r| r.contains("->")) {
            return Err("`->` twice".into());
        }
        let inputs = lhs
            .split(',')
            .map(Term::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if inputs.len() != n {
            return Err(format!(
                "{} operand term(s) for {n} operand(s); write one term per operand",
                inputs.len()
            ));
        }
        let any_ellipsis = inputs.iter().any(|t| t.ellipsis.is_some());
        let count = |c: char| {
            inputs
                .iter()
                .map(|t| t.letters.iter().filter(|&&l| l == c).count())
                .sum::<usize>()
        };
        let output = match rhs {
            Some(r) => {
                let out = Term::parse(r)?;
                for (i, &c) in out.letters.iter().enumerate() {
                    if out.letters[..i].contains(&c) {
                        return Err(format!("the output names `{c}` twice"));
                    }
                    if count(c) == 0 {
                        return Err(format!("the output's `{c}` is in no operand's term"));
                    }
                }
                if out.ellipsis.is_some() && !any_ellipsis {
                    return Err("the output has `...` but no operand has".into());
                }
                out
            }
            None => {
                let mut letters: Vec<char> = inputs
                    .iter()
                    .flat_map(|t| t.letters.iter().copied())
                    .filter(|&c| count(c) == 1)
                    .collect();
                letters.sort_unstable();
                Term {
                    letters,
                    ellipsis: any_ellipsis.then_some(0),
                }
            }
        };
        Ok(Spec { inputs, output })
    }

    /// The spec for operands of which those marked in `batched` have a batch axis in front,
    /// as the result then has (where any has): a letter the spec does not use names it.
    pub fn batched(mut self, batched: &[bool]) -> Result<Spec, String> {
        let used = |c: &char| {
            self.output.letters.contains(c) || self.inputs.iter().any(|t| t.letters.contains(c))
        };
        let Some(b) = ('a'..='z')
            .chain('A'..='Z')
            .chain('\u{3b1}'..='\u{3c9}')
            .find(|c| !used(c))
        else {
            return Err("no letter is left to name a batch axis".into());
        };
        for (t, &on) in self.inputs.iter_mut().zip(batched) {
            if on {
                t.with_front(b);
            }
        }
        if batched.contains(&true) {
            self.output.with_front(b);
        }
        Ok(self)
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.inputs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        write!(f, "->{}", self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::Spec;

    #[test]
    fn parses_and_prints_specs() {
        let p = |s: &str, n| Spec::parse(s, n).unwrap().to_string();
        assert_eq!(p("ij, jk", 2), "ij,jk->ik");
        assert_eq!(p("ba,cb", 2), "ba,cb->ac");
        assert_eq!(p("...ij,j...", 2), "...ij,j...->...i");
        assert_eq!(p("ii", 1), "ii->");
        assert_eq!(p("Ba,a", 2), "Ba,a->B");
        assert_eq!(p("", 1), "->");
        assert_eq!(p("i...->...", 1), "i...->...");
    }

    #[test]
    fn malformed_specs_are_named() {
        for (spec, n, message) in [
            ("ij,jk->ik", 1, "2 operand term(s) for 1 operand(s)"),
            ("ij->ii", 1, "the output names `i` twice"),
            ("ij->k", 1, "the output's `k` is in no operand's term"),
            ("i..j", 1, "a `.` outside `...`"),
            ("...i...", 1, "`...` twice in the term `...i...`"),
            ("i1", 1, "`1` is not a letter"),
            ("i->i->i", 1, "`->` twice"),
            ("i->...i", 1, "the output has `...` but no operand has"),
        ] {
            let e = Spec::parse(spec, n).unwrap_err();
            assert!(e.contains(message), "{spec}: {e}");
        }
    }

    #[test]
    fn batched_specs_name_a_new_axis() {
        let b = |s: &str, on: &[bool]| {
            Spec::parse(s, on.len())
                .unwrap()
                .batched(on)
                .unwrap()
                .to_string()
        };
        assert_eq!(b("ab,bc->ac", &[false, true]), "ab,dbc->dac");
        assert_eq!(b("...i,i", &[true, true]), "a...i,ai->a...");
        assert_eq!(b("ij", &[false]), "ij->ij");
        assert_eq!(b("ij,jk", &[true, false]), "aij,jk->aik");
    }
}
