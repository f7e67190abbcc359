//! From the pest parse tree of `grammar/cell.pest` to the AST of [`super::ast`].
//!
//! What enters is one NFC-normalised `.cell` text; what leaves is a
//! [`CellDef`] whose names are canonical ASCII (via [`super::names`]) and whose
//! operators carry their precedence, or the first error as a [`Diagnostic`].
//!
//! The grammar leaves two jobs to this module:
//! - precedence: `expr` and `size` are flat lists of operands and operators,
//!   folded into trees here by a [`PrattParser`];
//! - the checks that give a better message after parsing than a grammar failure
//!   would: time subscripts (`t+1`, `t-k`), a time index on a declared name, a
//!   stray `W[h; x]`, two operands side by side, numbers that do not fit.
//!
//! Nothing here may panic or recurse without bound: brackets nested deeper than
//! [`MAX_NESTING`] are refused before pest sees the text, and every expression
//! is kept within [`MAX_DEPTH`] levels of nesting as it is built (a chain of
//! operators `a + b + c + ...` is one level however long: the stages after this
//! one walk down its left side with a loop and recurse only into nesting), and
//! every size tree within [`MAX_DEPTH`] levels.

use super::ast::{
    BinOp, CellDef, Equation, Expr, ExprKind, Ident, InputDecl, Item, ParamDecl, SizeExpr,
    SizeKind, Span, StateDecl, StateInit, Target, TimeIndex,
};
use super::errors;
use super::functions;
use super::grammar::{CellGrammar, Rule};
use super::names;
use crate::diagnostic::Diagnostic;
use pest::Parser as _;
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use std::sync::LazyLock;

/// Brackets (`(`, `[`, `{`) open at once beyond which a text is refused before
/// parsing: pest and this builder recurse once per level.
pub(crate) const MAX_NESTING: usize = 200;

/// Levels of nesting beyond which an expression is refused: brackets, calls,
/// negations and the right operand of an operator nest; the left operand does
/// not, so `a + b + c + ...` of any length is one level and `a + b ∘ c` two.
/// Sizes count every operator (`X+X+X` is two levels).
pub(crate) const MAX_DEPTH: usize = 256;

type Result<T> = std::result::Result<T, Diagnostic>;

/// Operator precedence of expressions, loosest first. Function application is
/// an operand and binds tighter than all of these. A missing operator (two
/// operands side by side) is placed with the matrix product, so that its error
/// names the two nearest operands.
static EXPR_PRECEDENCE: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left) | Op::infix(Rule::div, Assoc::Left))
        .op(Op::infix(Rule::matmul, Assoc::Left) | Op::infix(Rule::missing_operator, Assoc::Left))
        .op(Op::prefix(Rule::neg))
});

/// Operator precedence of sizes: `*` over `+` and `-`.
static SIZE_PRECEDENCE: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::size_add, Assoc::Left) | Op::infix(Rule::size_sub, Assoc::Left))
        .op(Op::infix(Rule::size_mul, Assoc::Left))
});

/// Parses one normalised `.cell` text into its AST.
pub(crate) fn parse_cell(source: &str) -> Result<CellDef> {
    check_nesting(source)?;
    let file = CellGrammar::parse(Rule::file, source)
        .map_err(|e| errors::from_pest(e, source))?
        .next()
        .ok_or_else(|| internal(Span::default(), "an empty parse"))?;
    let cell = file
        .into_inner()
        .find(|p| p.as_rule() == Rule::cell)
        .ok_or_else(|| internal(Span::default(), "no cell in the parse"))?;
    Builder { source }.cell(cell)
}

/// The canonical spelling and time lag of one name as written, if it is one.
pub(crate) fn parse_lone_name(raw: &str) -> Option<(String, Option<u32>)> {
    check_nesting(raw).ok()?;
    let lone = CellGrammar::parse(Rule::lone_name, raw).ok()?.next()?;
    let var = lone.into_inner().find(|p| p.as_rule() == Rule::var)?;
    let (ident, time) = Builder { source: raw }.var(var).ok()?;
    Some((ident.name, time.map(|t| t.lag)))
}

/// Refuses brackets nested deeper than [`MAX_NESTING`], counting `(`, `[` and
/// `{` outside comments, before the recursive descent of pest (and of this
/// builder) meets them.
fn check_nesting(source: &str) -> Result<()> {
    let bytes = source.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' | b'%' => i = skip_line(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'/') => i = skip_line(bytes, i),
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::error(
                        format!("brackets nested too deeply (more than {MAX_NESTING} levels)"),
                        Span::new(i, i + 1),
                    )
                    .with_label("one level too many")
                    .with_note("help: name an intermediate value in an equation of its own"));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The index of the newline ending the line that `i` is on (or the end).
fn skip_line(bytes: &[u8], i: usize) -> usize {
    bytes[i..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |n| i + n)
}

fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

/// A parse tree this builder does not expect: a bug in the grammar or here,
/// reported rather than panicking.
fn internal(span: Span, what: &str) -> Diagnostic {
    Diagnostic::error(format!("internal error in the parser: {what}"), span)
        .with_note("note: this is a bug in cellc; please report it with the file")
}

fn unexpected(pair: &Pair<'_, Rule>) -> Diagnostic {
    internal(
        span_of(pair),
        &format!("unexpected `{:?}` in the parse tree", pair.as_rule()),
    )
}

fn too_deep(span: Span) -> Diagnostic {
    Diagnostic::error(
        format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
        span,
    )
    .with_note("help: name an intermediate value in an equation of its own")
}

/// An expression and the depth of its tree.
struct Built {
    expr: Expr,
    depth: usize,
}

/// A name as written: its canonical identifier, and its time subscript if the
/// last subscript was one.
type NameParts = (Ident, Option<TimeIndex>);

struct Builder<'s> {
    source: &'s str,
}

impl<'s> Builder<'s> {
    /// The source text of a span, shortened for a message.
    fn snippet(&self, span: Span) -> String {
        let text = self.source.get(span.start..span.end).unwrap_or("");
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.chars().count() > 40 {
            let head: String = text.chars().take(37).collect();
            format!("{head}...")
        } else {
            text
        }
    }

    // ----- the file and its statements -----

    fn cell(&self, pair: Pair<'s, Rule>) -> Result<CellDef> {
        let span = span_of(&pair);
        let mut name = None;
        let mut inputs = Vec::new();
        let mut items = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::name => name = Some(self.declared_name(p, "a cell")?),
                Rule::input => inputs.push(self.input(p)?),
                Rule::state_decl => items.push(Item::State(self.state_decl(p)?)),
                Rule::param_decl => items.push(Item::Params(self.param_decl(p)?)),
                Rule::output_decl => items.push(Item::Output(self.output_decl(p)?)),
                Rule::equation => items.push(Item::Equation(self.equation(p)?)),
                Rule::kw_cell
                | Rule::open_paren
                | Rule::close_paren
                | Rule::comma
                | Rule::open_body
                | Rule::close_cell => {}
                _ => return Err(unexpected(&p)),
            }
        }
        let name = name.ok_or_else(|| internal(span, "a cell without a name"))?;
        Ok(CellDef {
            name,
            inputs,
            items,
            span,
        })
    }

    fn input(&self, pair: Pair<'s, Rule>) -> Result<InputDecl> {
        let span = span_of(&pair);
        let mut name = None;
        let mut size = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::name => name = Some(self.declared_name(p, "an input")?),
                Rule::size => size = Some(self.size(p)?),
                Rule::colon | Rule::open_bracket | Rule::close_bracket => {}
                _ => return Err(unexpected(&p)),
            }
        }
        match (name, size) {
            (Some(name), Some(size)) => Ok(InputDecl { name, size, span }),
            _ => Err(internal(span, "an incomplete input")),
        }
    }

    fn state_decl(&self, pair: Pair<'s, Rule>) -> Result<StateDecl> {
        let span = span_of(&pair);
        let mut name = None;
        let mut size = None;
        let mut init = StateInit::Zero;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::name => name = Some(self.declared_name(p, "a state")?),
                Rule::size => size = Some(self.size(p)?),
                Rule::state_init => init = self.state_init(p)?,
                Rule::kw_state
                | Rule::colon
                | Rule::open_bracket
                | Rule::close_bracket
                | Rule::equals => {}
                _ => return Err(unexpected(&p)),
            }
        }
        match (name, size) {
            (Some(name), Some(size)) => Ok(StateDecl {
                name,
                size,
                init,
                span,
            }),
            _ => Err(internal(span, "an incomplete state declaration")),
        }
    }

    fn state_init(&self, pair: Pair<'s, Rule>) -> Result<StateInit> {
        let span = span_of(&pair);
        let Some(p) = pair.into_inner().next() else {
            return Err(internal(span, "an empty initial value"));
        };
        match p.as_rule() {
            Rule::kw_param => Ok(StateInit::Param),
            Rule::number if p.as_str().parse::<f64>().is_ok_and(|v| v == 0.0) => {
                Ok(StateInit::Zero)
            }
            Rule::number => Err(Diagnostic::error(
                format!(
                    "a state starts at `0` or at `param`, not at `{}`",
                    p.as_str()
                ),
                span_of(&p),
            )
            .with_label("expected `0` or `param`")
            .with_note(
                "help: `= param` makes the initial state a learnable parameter; \
                 an initial state can also be given at run time",
            )),
            _ => Err(unexpected(&p)),
        }
    }

    fn param_decl(&self, pair: Pair<'s, Rule>) -> Result<Vec<ParamDecl>> {
        let mut params = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::param_item => params.push(self.param_item(p)?),
                Rule::kw_param | Rule::comma => {}
                _ => return Err(unexpected(&p)),
            }
        }
        Ok(params)
    }

    fn param_item(&self, pair: Pair<'s, Rule>) -> Result<ParamDecl> {
        let span = span_of(&pair);
        let mut name = None;
        let mut shape = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::name => name = Some(self.declared_name(p, "a parameter")?),
                Rule::shape => shape = Some(self.shape(p)?),
                Rule::colon => {}
                _ => return Err(unexpected(&p)),
            }
        }
        let name = name.ok_or_else(|| internal(span, "a parameter without a name"))?;
        Ok(ParamDecl { name, shape, span })
    }

    fn shape(&self, pair: Pair<'s, Rule>) -> Result<Vec<SizeExpr>> {
        let mut sizes = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::size => sizes.push(self.size(p)?),
                Rule::open_bracket | Rule::close_bracket | Rule::comma => {}
                _ => return Err(unexpected(&p)),
            }
        }
        Ok(sizes)
    }

    /// `output y, h`: names of step values; `h_t` is accepted as `h`.
    fn output_decl(&self, pair: Pair<'s, Rule>) -> Result<Vec<Ident>> {
        let mut names = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::name => {
                    let (ident, time) = self.name(p)?;
                    if let Some(time) = time.filter(|t| t.lag > 0) {
                        return Err(Diagnostic::error(
                            format!(
                                "an output is a value of the current step, not `{}` at t-{}",
                                ident.name, time.lag
                            ),
                            time.span,
                        )
                        .with_label("a past value")
                        .with_note(format!("help: write `output {}`", ident.name)));
                    }
                    names.push(ident);
                }
                Rule::kw_output | Rule::comma => {}
                _ => return Err(unexpected(&p)),
            }
        }
        Ok(names)
    }

    fn equation(&self, pair: Pair<'s, Rule>) -> Result<Equation> {
        let start = pair.as_span().start();
        let whole = span_of(&pair);
        let mut targets = Vec::new();
        let mut destructuring = false;
        let mut rhs = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::var => {
                    let (name, time) = self.var(p)?;
                    targets.push(Target { name, time });
                }
                Rule::targets => {
                    destructuring = true;
                    for t in p.into_inner() {
                        match t.as_rule() {
                            Rule::var => {
                                let (name, time) = self.var(t)?;
                                targets.push(Target { name, time });
                            }
                            Rule::open_bracket | Rule::semicolon | Rule::close_bracket => {}
                            _ => return Err(unexpected(&t)),
                        }
                    }
                }
                Rule::expr => rhs = Some(self.expr(p)?.expr),
                Rule::assign | Rule::row_end => {}
                _ => return Err(unexpected(&p)),
            }
        }
        let rhs = rhs.ok_or_else(|| internal(whole, "an equation without a right side"))?;
        // The span ends with the right side, not with a trailing `\\`.
        let span = Span::new(start, rhs.span.end);
        Ok(Equation {
            targets,
            destructuring,
            rhs,
            span,
        })
    }

    // ----- names and time -----

    /// A declared name (of the cell, an input, a state, a parameter), which has
    /// no time index: it names the value at every step.
    fn declared_name(&self, pair: Pair<'s, Rule>, what: &str) -> Result<Ident> {
        let (ident, time) = self.name(pair)?;
        match time {
            None => Ok(ident),
            Some(time) => Err(Diagnostic::error(
                format!(
                    "{what} is declared without a time index: `{}`, not `{}`",
                    ident.name,
                    self.snippet(ident.span.to(time.span))
                ),
                time.span,
            )
            .with_label("a time index")
            .with_note(
                "note: a subscript `t` or `t-k` at the end of a name is a time index, \
                 not part of the name",
            )),
        }
    }

    /// A name with an optional glued bracket time index: `h_{t-1}`, `h[t-1]`.
    fn var(&self, pair: Pair<'s, Rule>) -> Result<NameParts> {
        let span = span_of(&pair);
        let mut inner = pair.into_inner();
        let name = inner
            .next()
            .ok_or_else(|| internal(span, "a name without its text"))?;
        let (ident, time) = self.name(name)?;
        let Some(bracket) = inner.next() else {
            return Ok((ident, time));
        };
        let bracket_span = span_of(&bracket);
        match bracket.as_rule() {
            Rule::time_bracket => {
                if let Some(first) = time {
                    return Err(Diagnostic::error(
                        format!("`{}` has two time indices", ident.name),
                        bracket_span,
                    )
                    .with_label("a second time index")
                    .with_secondary(first.span, "the first one")
                    .with_note("help: write one of them: `h_{t-1}` or `h[t-1]`"));
                }
                let time = bracket
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::time)
                    .ok_or_else(|| internal(bracket_span, "a time bracket without a time"))?;
                let lag = self.time_lag(time)?;
                Ok((
                    ident,
                    Some(TimeIndex {
                        lag,
                        span: bracket_span,
                    }),
                ))
            }
            Rule::stray_bracket => Err(Diagnostic::error(
                format!(
                    "`{}` right after the name `{}` is not a time index",
                    self.snippet(bracket_span),
                    self.snippet(ident.span)
                ),
                bracket_span,
            )
            .with_label("a bracket glued to a name holds a time: `[t]` or `[t-k]`")
            .with_note(format!(
                "help: to multiply by a concatenation, write an operator: `{} · {}`",
                self.snippet(ident.span),
                self.snippet(bracket_span)
            ))),
            _ => Err(unexpected(&bracket)),
        }
    }

    /// A name: its canonical spelling, and its time index if the last
    /// subscript is `t` or `t-k`.
    fn name(&self, pair: Pair<'s, Rule>) -> Result<NameParts> {
        let span = span_of(&pair);
        let mut inner = pair.into_inner();
        let base = inner
            .next()
            .ok_or_else(|| internal(span, "a name without a base"))?;
        let mut text = self.name_base(base)?;
        let subscripts: Vec<Pair<'s, Rule>> = inner.collect();
        let count = subscripts.len();
        let mut name_end = span.end;
        let mut time = None;
        for (i, sub) in subscripts.into_iter().enumerate() {
            let last = i + 1 == count;
            let sub_span = span_of(&sub);
            let piece = sub
                .into_inner()
                .next()
                .ok_or_else(|| internal(sub_span, "an empty subscript"))?;
            // A braced subscript holds a word or a time.
            let piece = if piece.as_rule() == Rule::braced_subscript {
                let piece_span = span_of(&piece);
                piece
                    .into_inner()
                    .next()
                    .ok_or_else(|| internal(piece_span, "empty braces"))?
            } else {
                piece
            };
            match piece.as_rule() {
                Rule::subscript_word => {
                    let word = self.ascii_word(&piece)?;
                    if last && word == "t" {
                        name_end = sub_span.start;
                        time = Some(TimeIndex {
                            lag: 0,
                            span: sub_span,
                        });
                    } else {
                        text.push('_');
                        text.push_str(&word);
                    }
                }
                Rule::time => {
                    let is_now = piece.as_str() == "t";
                    if last {
                        let lag = self.time_lag(piece)?;
                        name_end = sub_span.start;
                        time = Some(TimeIndex {
                            lag,
                            span: sub_span,
                        });
                    } else if is_now {
                        // `h_{t}_x` is the name `h_t_x`, as `h_t_x` is.
                        text.push_str("_t");
                    } else {
                        return Err(Diagnostic::error(
                            "a time index must be the last subscript of a name",
                            sub_span,
                        )
                        .with_label("a time index followed by another subscript"));
                    }
                }
                _ => return Err(unexpected(&piece)),
            }
        }
        let ident = Ident {
            name: text,
            span: Span::new(span.start, name_end),
        };
        Ok((ident, time))
    }

    /// The ASCII spelling of a name's base (before its subscripts).
    fn name_base(&self, pair: Pair<'s, Rule>) -> Result<String> {
        let span = span_of(&pair);
        match pair.as_rule() {
            Rule::word => self.ascii_word(&pair),
            Rule::greek_command => Ok(names::greek_command_name(&pair.as_str()[1..]).to_string()),
            Rule::accented | Rule::font_styled => {
                let mut inner = pair.into_inner();
                let (Some(command), Some(base)) = (inner.next(), inner.next()) else {
                    return Err(internal(span, "an accent without its letter"));
                };
                let base = self.name_base(base)?;
                Ok(match command.as_rule() {
                    Rule::accent_command => base + names::accent_suffix(command.as_str()),
                    _ => base,
                })
            }
            _ => Err(unexpected(&pair)),
        }
    }

    fn ascii_word(&self, pair: &Pair<'s, Rule>) -> Result<String> {
        names::ascii_word(pair.as_str()).map_err(|c| {
            Diagnostic::error(
                format!("`{c}` has no ASCII spelling and cannot be used in a name"),
                span_of(pair),
            )
            .with_label("in this name")
            .with_note(
                "note: names use ASCII letters and digits, Greek letters, and the tilde and \
                 hat accents (`C̃`, `ĥ`)",
            )
        })
    }

    /// The lag of a time `t`, `t-k`; `t+k` and a lag that is not an integer are
    /// errors.
    fn time_lag(&self, pair: Pair<'s, Rule>) -> Result<u32> {
        let span = span_of(&pair);
        let mut sign = None;
        let mut amount = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::time_sign => sign = Some(p),
                Rule::time_amount => amount = Some(p),
                _ => return Err(unexpected(&p)),
            }
        }
        let (Some(sign), Some(amount)) = (sign, amount) else {
            return Ok(0);
        };
        if sign.as_str() == "+" {
            return Err(Diagnostic::error(
                format!(
                    "a future value cannot be read: `t+{}` is after the current step",
                    amount.as_str()
                ),
                span,
            )
            .with_label("a future step")
            .with_note(
                "note: an equation of step t reads the current step (`t`) and past steps \
                 of states (`t-1`, `t-2`, ...)",
            ));
        }
        let text = amount.as_str();
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Diagnostic::error(
                format!("a time lag is a whole number of steps, not `{text}`"),
                span_of(&amount),
            )
            .with_label("expected an integer")
            .with_note("help: write `t-1`, `t-2`, ..."));
        }
        text.parse::<u32>().map_err(|_| {
            Diagnostic::error(format!("time lag `{text}` is too large"), span_of(&amount))
                .with_label("too many steps back")
        })
    }

    // ----- sizes -----

    fn size(&self, pair: Pair<'s, Rule>) -> Result<SizeExpr> {
        Ok(self.size_tree(pair)?.0)
    }

    /// A size and the depth of its tree.
    fn size_tree(&self, pair: Pair<'s, Rule>) -> Result<(SizeExpr, usize)> {
        SIZE_PRECEDENCE
            .map_primary(|p| self.size_operand(p))
            .map_infix(|lhs, op, rhs| {
                let (lhs, ld) = lhs?;
                let (rhs, rd) = rhs?;
                let span = lhs.span.to(rhs.span);
                let depth = ld.max(rd) + 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep(span));
                }
                let kind = match op.as_rule() {
                    Rule::size_add => SizeKind::Add(Box::new(lhs), Box::new(rhs)),
                    Rule::size_sub => SizeKind::Sub(Box::new(lhs), Box::new(rhs)),
                    Rule::size_mul => {
                        if !is_constant(&lhs) && !is_constant(&rhs) {
                            return Err(Diagnostic::error(
                                "a size can be multiplied only by an integer",
                                span,
                            )
                            .with_label("a product of two dimensions")
                            .with_note("help: sizes are like `4*H`, `H+X`, `2*(H+X)`"));
                        }
                        SizeKind::Mul(Box::new(lhs), Box::new(rhs))
                    }
                    _ => return Err(unexpected(&op)),
                };
                Ok((SizeExpr { kind, span }, depth))
            })
            .parse(pair.into_inner())
    }

    fn size_operand(&self, pair: Pair<'s, Rule>) -> Result<(SizeExpr, usize)> {
        let span = span_of(&pair);
        let pair = pair
            .into_inner()
            .next()
            .ok_or_else(|| internal(span, "an empty size"))?;
        match pair.as_rule() {
            Rule::size_int => {
                let value = pair.as_str().parse::<i64>().map_err(|_| {
                    Diagnostic::error(format!("size `{}` is too large", pair.as_str()), span)
                        .with_label("does not fit in 64 bits")
                })?;
                Ok((
                    SizeExpr {
                        kind: SizeKind::Int(value),
                        span,
                    },
                    0,
                ))
            }
            Rule::name => {
                let ident = self.declared_name(pair, "a size")?;
                Ok((
                    SizeExpr {
                        kind: SizeKind::Name(ident.name),
                        span,
                    },
                    0,
                ))
            }
            Rule::size_group => {
                let inner = pair
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::size)
                    .ok_or_else(|| internal(span, "empty parentheses in a size"))?;
                let (mut size, depth) = self.size_tree(inner)?;
                size.span = span;
                Ok((size, depth))
            }
            _ => Err(unexpected(&pair)),
        }
    }

    // ----- expressions -----

    fn expr(&self, pair: Pair<'s, Rule>) -> Result<Built> {
        // The Pratt parser recurses once per prefix operator; refuse a run of
        // them longer than a tree may be deep before it starts.
        let mut run = 0;
        for p in pair.clone().into_inner() {
            if p.as_rule() == Rule::neg {
                run += 1;
                if run > MAX_DEPTH {
                    return Err(too_deep(span_of(&p)));
                }
            } else {
                run = 0;
            }
        }
        EXPR_PRECEDENCE
            .map_primary(|p| self.operand(p))
            .map_prefix(|op, rhs| {
                let rhs = rhs?;
                let span = span_of(&op).to(rhs.expr.span);
                let depth = rhs.depth + 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep(span));
                }
                Ok(Built {
                    expr: Expr {
                        kind: ExprKind::Neg(Box::new(rhs.expr)),
                        span,
                    },
                    depth,
                })
            })
            .map_infix(|lhs, op, rhs| {
                let lhs = lhs?;
                let rhs = rhs?;
                let op_span = span_of(&op);
                let span = lhs.expr.span.to(rhs.expr.span);
                let op = match op.as_rule() {
                    Rule::add => BinOp::Add,
                    Rule::sub => BinOp::Sub,
                    Rule::matmul => BinOp::MatMul,
                    Rule::mul => BinOp::Mul,
                    Rule::div => BinOp::Div,
                    Rule::missing_operator => {
                        return Err(self.missing_operator(&lhs.expr, &rhs.expr));
                    }
                    _ => return Err(unexpected(&op)),
                };
                binary(op, op_span, span, lhs, rhs)
            })
            .parse(pair.into_inner())
    }

    fn missing_operator(&self, lhs: &Expr, rhs: &Expr) -> Diagnostic {
        let (a, b) = (self.snippet(lhs.span), self.snippet(rhs.span));
        let mut diagnostic = Diagnostic::error(
            format!("missing operator between `{a}` and `{b}`"),
            rhs.span,
        )
        .with_label("expected an operator before this")
        .with_secondary(lhs.span, "after this")
        .with_note(if matches!(lhs.kind, ExprKind::Number(_)) {
            // A number scales elementwise; `·` would need a matrix.
            format!("help: values side by side are not multiplied; write `{a} * {b}`")
        } else {
            format!(
                "help: values side by side are not multiplied; write `{a} · {b}` for a matrix \
                 product or `{a} ∘ {b}` for an elementwise one"
            )
        });
        if let ExprKind::Var { name, time: None } = &lhs.kind
            && functions::is_function_word(&name.name)
        {
            diagnostic = diagnostic.with_note(format!(
                "help: `{a}` is a function; its argument goes in parentheses: `{a}({b})`"
            ));
        }
        let gap = self.source.get(lhs.span.end..rhs.span.start).unwrap_or("");
        if gap.contains('\n') && matches!(rhs.kind, ExprKind::Var { .. }) {
            diagnostic = diagnostic.with_note(format!(
                "help: if `{b}` starts a new equation, it needs `=`"
            ));
        }
        diagnostic
    }

    /// One operand. Each kind is built by a function of its own, kept out of
    /// line so that the frame of this dispatcher, which every level of nested
    /// brackets passes through, stays small.
    fn operand(&self, pair: Pair<'s, Rule>) -> Result<Built> {
        match pair.as_rule() {
            Rule::number => self.number(pair),
            Rule::var => {
                let span = span_of(&pair);
                let (name, time) = self.var(pair)?;
                Ok(leaf(ExprKind::Var { name, time }, span))
            }
            Rule::group => self.group(pair),
            Rule::frac => self.frac(pair),
            Rule::sqrt => self.sqrt(pair),
            Rule::call => self.call(pair),
            Rule::concat => self.concat(pair),
            _ => Err(unexpected(&pair)),
        }
    }

    #[inline(never)]
    fn number(&self, pair: Pair<'s, Rule>) -> Result<Built> {
        let span = span_of(&pair);
        let value = pair
            .as_str()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| {
                Diagnostic::error(format!("number `{}` is too large", pair.as_str()), span)
                    .with_label("beyond the range of a 64-bit float")
            })?;
        Ok(leaf(ExprKind::Number(value), span))
    }

    /// `(a)`, `\left(a\right)`: the expression inside, whose span grows to
    /// take in the parentheses.
    #[inline(never)]
    fn group(&self, pair: Pair<'s, Rule>) -> Result<Built> {
        let span = span_of(&pair);
        let inner = pair
            .into_inner()
            .find(|p| p.as_rule() == Rule::expr)
            .ok_or_else(|| internal(span, "empty parentheses"))?;
        let mut built = self.expr(inner)?;
        built.expr.span = span;
        Ok(built)
    }

    /// `\frac{a}{b}`: `a / b`, the operator being `\frac`.
    #[inline(never)]
    fn frac(&self, pair: Pair<'s, Rule>) -> Result<Built> {
        let span = span_of(&pair);
        let mut command = None;
        let mut parts = Vec::with_capacity(2);
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::frac_command => command = Some(span_of(&p)),
                Rule::expr => parts.push(self.expr(p)?),
                Rule::open_brace | Rule::close_brace => {}
                _ => return Err(unexpected(&p)),
            }
        }
        let (Some(op_span), Some(den), Some(num)) = (command, parts.pop(), parts.pop()) else {
            return Err(internal(span, "an incomplete `\\frac`"));
        };
        binary(BinOp::Div, op_span, span, num, den)
    }

    /// `\sqrt{a}`: the call `sqrt(a)`.
    #[inline(never)]
    fn sqrt(&self, pair: Pair<'s, Rule>) -> Result<Built> {
        let span = span_of(&pair);
        let mut command = None;
        let mut arg = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::sqrt_command => command = Some(span_of(&p)),
                Rule::expr => arg = Some(self.expr(p)?),
                Rule::open_brace | Rule::close_brace => {}
                _ => return Err(unexpected(&p)),
            }
        }
        let (Some(func_span), Some(arg)) = (command, arg) else {
            return Err(internal(span, "an incomplete `\\sqrt`"));
        };
        let func = Ident {
            name: "sqrt".to_string(),
            span: func_span,
        };
        call(func, vec![arg], span)
    }

    #[inline(never)]
    fn call(&self, pair: Pair<'s, Rule>) -> Result<Built> {
        let span = span_of(&pair);
        let mut func = None;
        let mut args = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::function_name => func = Some(self.function_name(p)?),
                Rule::arguments => {
                    for a in p.into_inner() {
                        match a.as_rule() {
                            Rule::expr => args.push(self.expr(a)?),
                            Rule::open_paren
                            | Rule::close_paren
                            | Rule::left_paren
                            | Rule::right_paren
                            | Rule::comma => {}
                            _ => return Err(unexpected(&a)),
                        }
                    }
                }
                _ => return Err(unexpected(&p)),
            }
        }
        let func = func.ok_or_else(|| internal(span, "a call without a function"))?;
        call(func, args, span)
    }

    /// `[a; b; c]`, `\left[a; b\right]`.
    #[inline(never)]
    fn concat(&self, pair: Pair<'s, Rule>) -> Result<Built> {
        let span = span_of(&pair);
        let mut parts = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::expr => parts.push(self.expr(p)?),
                Rule::open_bracket
                | Rule::close_bracket
                | Rule::left_bracket
                | Rule::right_bracket
                | Rule::semicolon => {}
                _ => return Err(unexpected(&p)),
            }
        }
        let depth = nested_depth(&parts, span)?;
        Ok(Built {
            expr: Expr {
                kind: ExprKind::Concat(parts.into_iter().map(|b| b.expr).collect()),
                span,
            },
            depth,
        })
    }

    /// The head of a call, with its canonical function name.
    fn function_name(&self, pair: Pair<'s, Rule>) -> Result<Ident> {
        let span = span_of(&pair);
        let raw = pair.as_str();
        let inner = pair
            .into_inner()
            .next()
            .ok_or_else(|| internal(span, "a call without a function name"))?;
        let canonical = match inner.as_rule() {
            Rule::latex_function => raw.to_string(),
            Rule::name => {
                let (ident, time) = self.name(inner)?;
                if let Some(time) = time {
                    return Err(Diagnostic::error(
                        format!("`{}` is a value, not a function", self.snippet(span)),
                        span,
                    )
                    .with_label("followed by `(`")
                    .with_secondary(time.span, "a time index")
                    .with_note(format!(
                        "help: to multiply, write an operator: `{} · (...)` or `{} ∘ (...)`",
                        raw, raw
                    )));
                }
                ident.name
            }
            _ => return Err(unexpected(&inner)),
        };
        Ok(Ident {
            name: functions::function_name(raw, &canonical),
            span,
        })
    }
}

fn leaf(kind: ExprKind, span: Span) -> Built {
    Built {
        expr: Expr { kind, span },
        depth: 0,
    }
}

/// The depth of a node over `children`, refused beyond [`MAX_DEPTH`].
fn nested_depth(children: &[Built], span: Span) -> Result<usize> {
    let depth = children.iter().map(|b| b.depth).max().unwrap_or(0) + 1;
    if depth > MAX_DEPTH {
        Err(too_deep(span))
    } else {
        Ok(depth)
    }
}

fn binary(op: BinOp, op_span: Span, span: Span, lhs: Built, rhs: Built) -> Result<Built> {
    // Only the right operand nests (see `MAX_DEPTH`).
    let depth = lhs.depth.max(rhs.depth + 1);
    if depth > MAX_DEPTH {
        return Err(too_deep(span));
    }
    Ok(Built {
        expr: Expr {
            kind: ExprKind::Binary {
                op,
                op_span,
                lhs: Box::new(lhs.expr),
                rhs: Box::new(rhs.expr),
            },
            span,
        },
        depth,
    })
}

fn call(func: Ident, args: Vec<Built>, span: Span) -> Result<Built> {
    let depth = nested_depth(&args, span)?;
    Ok(Built {
        expr: Expr {
            kind: ExprKind::Call {
                func,
                args: args.into_iter().map(|b| b.expr).collect(),
            },
            span,
        },
        depth,
    })
}

/// Whether a size holds no dimension name (`4`, `2+1`).
fn is_constant(size: &SizeExpr) -> bool {
    match &size.kind {
        SizeKind::Int(_) => true,
        SizeKind::Name(_) => false,
        SizeKind::Add(a, b) | SizeKind::Sub(a, b) | SizeKind::Mul(a, b) => {
            is_constant(a) && is_constant(b)
        }
    }
}
