//! The reader of the IR's text form: the inverse of [`super::print::text`].
//!
//! What enters is the text the printer writes (a title line, one line per node,
//! one per result); what leaves is the [`Graph`], or a [`ParseError`] with the
//! line and column of the first thing that is not IR. It exists so that a graph
//! can be written by hand: the filetests (`tests/filetests/`) give a pass a
//! small graph as text and compare what it makes with the text expected, as
//! Cranelift's `.clif` files do.
//!
//! ```text
//! step elman                                   title: any line before the nodes
//!   %0 = arg W : [H, H+X]                      argument `W`, numbered by first use
//!   %1 = arg x[t] : [B, X]                     `B` first: the batch axis
//!   %2 = matvec %0, %1 : [B, H]  # a           operands in position order; a label
//!   %3 = slice[0; H] %2 : [B, H]               sizes are affine: 3, H, H+X, 4*H, H-1
//!   result h[t] = %3
//! ```
//!
//! The reader only reads: it does not check shapes, arities or the order of
//! operands, so that a graph the verifier rejects can be written too (the
//! `verify` filetests are such graphs). For those it accepts two forms the
//! printer writes only for graphs no pass makes: `argN` (the op's own name,
//! argument number `N` whether or not it exists, with operands if any) and
//! `%N@P` (operand `%N` on edge position `P`). Lines starting with `;` are
//! comments, blank lines are skipped.
//!
//! What the text does not say: arguments without a node (every pass gives each
//! argument one node, first, in order), and a dimension named `B` written first
//! in an unbatched type, which reads as the batch axis.

use super::dim::{Dim, Type};
use super::op::{Binary, Op, Unary};
use super::{Arg, Graph, Node, NodeId, Output};
use petgraph::graph::NodeIndex;

/// Where the text stops being IR, and why. Lines and columns count from 1, the
/// column in characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Reads a printed graph.
pub fn parse(text: &str) -> Result<Graph, ParseError> {
    parse_titled(text).map(|(_, g)| g)
}

/// Reads a printed graph and its title line (empty when there is none).
pub fn parse_titled(text: &str) -> Result<(String, Graph), ParseError> {
    let mut title: Option<String> = None;
    let mut nodes: Vec<NodeLine> = Vec::new();
    let mut results: Vec<(String, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let body = raw.trim_start();
        if body.is_empty() || body.starts_with(';') {
            continue;
        }
        let mut c = Cursor {
            line: raw,
            pos: raw.len() - body.len(),
            line_no: i + 1,
        };
        if body.starts_with('%') {
            nodes.push(c.node_line(nodes.len())?);
        } else if c.keyword("result") {
            results.push(c.result_line()?);
        } else if title.is_none() && nodes.is_empty() && results.is_empty() && c.pos == 0 {
            title = Some(raw.to_string());
        } else {
            return Err(c.error("expected a node `%N = ...` or a result `result NAME = %N`"));
        }
    }
    let graph = assemble(nodes, results)?;
    Ok((title.unwrap_or_default(), graph))
}

/// What the op of a node line names, before arguments are numbered.
enum Head {
    Op(Op),
    /// `arg NAME`: numbered by first appearance.
    NamedArg(String),
    /// `zeros`: its type is the node's.
    Zeros,
}

struct NodeLine {
    head: Head,
    /// Operand node, its edge position (`None`: its place in the list), and
    /// where it was written.
    operands: Vec<(usize, Option<u32>, Pos)>,
    ty: Type,
    label: Option<String>,
}

#[derive(Clone, Copy)]
struct Pos {
    line: usize,
    column: usize,
}

fn assemble(nodes: Vec<NodeLine>, results: Vec<(String, usize)>) -> Result<Graph, ParseError> {
    let mut g = Graph::default();
    let mut operands = Vec::with_capacity(nodes.len());
    let count = nodes.len();
    for n in nodes {
        let op = match n.head {
            Head::Op(op) => op,
            Head::Zeros => Op::Zeros(n.ty.clone()),
            Head::NamedArg(name) => match g.args.iter().position(|a| a.name == name) {
                Some(i) => Op::Arg(i),
                None => {
                    g.args.push(Arg {
                        name,
                        ty: n.ty.clone(),
                    });
                    Op::Arg(g.args.len() - 1)
                }
            },
        };
        g.dag.add_node(Node {
            op,
            ty: n.ty,
            label: n.label,
        });
        operands.push(n.operands);
    }
    for (i, ops) in operands.into_iter().enumerate() {
        for (k, (src, position, at)) in ops.into_iter().enumerate() {
            if src >= count {
                return Err(ParseError {
                    line: at.line,
                    column: at.column,
                    message: format!("there is no node %{src} (the graph has {count})"),
                });
            }
            let position = position.unwrap_or(k as u32);
            g.dag
                .add_edge(NodeIndex::new(src), NodeIndex::new(i), position);
        }
    }
    // A result naming a missing node is the verifier's to report.
    g.results = results
        .into_iter()
        .map(|(name, n)| Output {
            name,
            node: NodeId::new(n),
        })
        .collect();
    Ok(g)
}

const BINARY: [Binary; 4] = [Binary::Add, Binary::Sub, Binary::Mul, Binary::Div];

/// The ops whose printed name is one word and carries nothing else; the names
/// are taken from [`Op::name`], so that the printer and the reader agree.
fn plain_op(word: &str) -> Option<Op> {
    let fixed = [
        Op::MatVec,
        Op::MatTVec,
        Op::Outer,
        Op::OuterSum,
        Op::Concat,
        Op::Sum,
        Op::Max,
        Op::ArgMaxMask,
        Op::BatchSum,
        Op::StopGradient,
    ];
    Unary::ALL
        .iter()
        .map(|u| Op::Unary(*u))
        .chain(BINARY.iter().map(|b| Op::Binary(*b)))
        .chain(fixed)
        .find(|op| op.name() == word)
}

/// One line of text, read left to right.
struct Cursor<'a> {
    line: &'a str,
    /// Byte offset into `line`.
    pos: usize,
    line_no: usize,
}

fn is_word_char(c: char) -> bool {
    // Dimension names are the language's identifiers: letters, marks, digits, `_`.
    c.is_alphanumeric() || c == '_' || (!c.is_ascii() && !c.is_whitespace())
}

impl Cursor<'_> {
    fn here(&self) -> Pos {
        Pos {
            line: self.line_no,
            column: self.line[..self.pos].chars().count() + 1,
        }
    }
    fn error(&self, message: impl Into<String>) -> ParseError {
        let at = self.here();
        ParseError {
            line: at.line,
            column: at.column,
            message: message.into(),
        }
    }
    fn rest(&self) -> &str {
        &self.line[self.pos..]
    }
    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }
    fn bump(&mut self) {
        if let Some(c) = self.peek() {
            self.pos += c.len_utf8();
        }
    }
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }
    /// What is at the cursor, for messages.
    fn found(&self) -> String {
        match self.peek() {
            None => "the end of the line".into(),
            Some(_) => {
                let s: String = self
                    .rest()
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .take(20)
                    .collect();
                format!("`{s}`")
            }
        }
    }
    fn expect(&mut self, c: char, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(c) {
            self.bump();
            Ok(())
        } else {
            Err(self.error(format!("expected {what}, found {}", self.found())))
        }
    }
    /// Consumes `word` when it is a whole word at the cursor.
    fn keyword(&mut self, word: &str) -> bool {
        let rest = self.rest();
        if rest.starts_with(word) && !rest[word.len()..].chars().next().is_some_and(is_word_char) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }
    fn word(&mut self) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(is_word_char) {
            self.bump();
        }
        &self.line[start..self.pos]
    }
    fn int<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, ParseError> {
        let at = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        let digits = &self.line[at..self.pos];
        if digits.is_empty() {
            self.pos = at;
            return Err(self.error(format!("expected {what}, found {}", self.found())));
        }
        digits.parse().map_err(|_| {
            let e = self.error(format!("{what} `{digits}` is too large"));
            ParseError {
                column: self.line[..at].chars().count() + 1,
                ..e
            }
        })
    }
    fn at_end(&mut self) -> Result<(), ParseError> {
        self.skip_ws();
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.error(format!("unexpected {} at the end", self.found()))),
        }
    }

    /// `%N = HEAD OPERANDS : TYPE  # label`
    fn node_line(&mut self, expected: usize) -> Result<NodeLine, ParseError> {
        self.expect('%', "`%`")?;
        let at = self.here();
        let n: usize = self.int("a node number")?;
        if n != expected {
            return Err(ParseError {
                line: at.line,
                column: at.column,
                message: format!("nodes are numbered in order: expected %{expected}, found %{n}"),
            });
        }
        self.skip_ws();
        self.expect('=', "`=`")?;
        self.skip_ws();
        let head = self.head()?;
        self.skip_ws();
        let operands = if self.peek() == Some('%') {
            self.operands()?
        } else {
            Vec::new()
        };
        self.skip_ws();
        self.expect(':', "`:` and the node's type")?;
        self.skip_ws();
        let ty = self.ty()?;
        self.skip_ws();
        let label = if self.peek() == Some('#') {
            self.bump();
            if self.peek() == Some(' ') {
                self.bump();
            }
            let l = self.rest().to_string();
            self.pos = self.line.len();
            Some(l)
        } else {
            self.at_end()?;
            None
        };
        Ok(NodeLine {
            head,
            operands,
            ty,
            label,
        })
    }

    fn head(&mut self) -> Result<Head, ParseError> {
        let start = self.pos;
        let at = self.here();
        let word = self.word().to_string();
        let unknown = |word: &str| ParseError {
            line: at.line,
            column: at.column,
            message: if word.is_empty() {
                "expected an op".to_string()
            } else {
                format!("unknown op `{word}`")
            },
        };
        Ok(match word.as_str() {
            "arg" => {
                self.skip_ws();
                // A name runs to the `:` before the type (names have spaces:
                // `saved z`, `dout h`).
                let end = self.rest().find(':').unwrap_or(self.rest().len());
                let name = self.rest()[..end].trim_end().to_string();
                if name.is_empty() {
                    return Err(self.error("expected the argument's name"));
                }
                self.pos += end;
                Head::NamedArg(name)
            }
            w if w.len() > 3
                && w.starts_with("arg")
                && w[3..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                self.pos = start + 3;
                Head::Op(Op::Arg(self.int("an argument number")?))
            }
            "const" => {
                self.skip_ws();
                let at = self.pos;
                while self.peek().is_some_and(|c| !c.is_whitespace() && c != ':') {
                    self.bump();
                }
                let text = &self.line[at..self.pos];
                match text.parse::<f64>() {
                    Ok(v) => Head::Op(Op::Const(v)),
                    Err(_) => {
                        self.pos = at;
                        return Err(self.error(format!(
                            "expected a number after `const`, found {}",
                            self.found()
                        )));
                    }
                }
            }
            "size" => {
                self.skip_ws();
                Head::Op(Op::DimSize(self.dim()?))
            }
            "zeros" => Head::Zeros,
            "slice" => {
                self.expect('[', "`[` after `slice`")?;
                let start = self.dim()?;
                self.skip_ws();
                self.expect(';', "`;` between the slice's start and length")?;
                let len = self.dim()?;
                self.skip_ws();
                self.expect(']', "`]`")?;
                Head::Op(Op::Slice { start, len })
            }
            "broadcast" => Head::Op(Op::Broadcast(self.dims_in_brackets()?)),
            w => Head::Op(plain_op(w).ok_or_else(|| unknown(w))?),
        })
    }

    /// `%a, %b@1, ...`
    fn operands(&mut self) -> Result<Vec<(usize, Option<u32>, Pos)>, ParseError> {
        let mut out = Vec::new();
        loop {
            let at = self.here();
            self.expect('%', "an operand `%N`")?;
            let n = self.int("a node number")?;
            let position = if self.peek() == Some('@') {
                self.bump();
                Some(self.int("an operand position")?)
            } else {
                None
            };
            out.push((n, position, at));
            self.skip_ws();
            if self.peek() != Some(',') {
                return Ok(out);
            }
            self.bump();
            self.skip_ws();
        }
    }

    /// `[B, H, H+X]`, `[]`: `B` first is the batch axis.
    fn ty(&mut self) -> Result<Type, ParseError> {
        self.expect('[', "a type `[...]`")?;
        self.skip_ws();
        let save = self.pos;
        let batched = self.keyword("B") && {
            self.skip_ws();
            matches!(self.peek(), Some(',' | ']'))
        };
        if batched {
            if self.peek() == Some(',') {
                self.bump();
            } else {
                self.bump();
                return Ok(Type::scalar(true));
            }
        } else {
            self.pos = save;
        }
        let dims = self.dim_list()?;
        Ok(Type::new(batched, dims))
    }

    /// `[d, d, ...]`, possibly empty.
    fn dims_in_brackets(&mut self) -> Result<Vec<Dim>, ParseError> {
        self.expect('[', "`[`")?;
        self.dim_list()
    }

    /// Sizes separated by commas up to and including the closing `]`.
    fn dim_list(&mut self) -> Result<Vec<Dim>, ParseError> {
        let mut dims = Vec::new();
        self.skip_ws();
        if self.peek() == Some(']') {
            self.bump();
            return Ok(dims);
        }
        loop {
            dims.push(self.dim()?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.bump(),
                Some(']') => {
                    self.bump();
                    return Ok(dims);
                }
                _ => {
                    return Err(self.error(format!("expected `,` or `]`, found {}", self.found())));
                }
            }
        }
    }

    /// An affine size: `3`, `H`, `H+X`, `4*H-1`, `-H`, `?2` (an unknown).
    fn dim(&mut self) -> Result<Dim, ParseError> {
        self.skip_ws();
        let mut d = Dim::konst(0);
        let mut sign = 1;
        if self.peek() == Some('-') {
            self.bump();
            sign = -1;
        }
        loop {
            self.skip_ws();
            let term = self.term()?;
            d = term
                .scale(sign)
                .and_then(|t| d.add(&t))
                .map_err(|e| self.error(e.to_string()))?;
            self.skip_ws();
            match self.peek() {
                Some('+') => sign = 1,
                Some('-') => sign = -1,
                _ => return Ok(d),
            }
            self.bump();
        }
    }

    fn term(&mut self) -> Result<Dim, ParseError> {
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                let k: i64 = self.int("a number")?;
                self.skip_ws();
                if self.peek() == Some('*') {
                    self.bump();
                    self.skip_ws();
                    let a = self.atom()?;
                    a.scale(k).map_err(|e| self.error(e.to_string()))
                } else {
                    Ok(Dim::konst(k))
                }
            }
            _ => self.atom(),
        }
    }

    fn atom(&mut self) -> Result<Dim, ParseError> {
        if self.peek() == Some('?') {
            self.bump();
            return Ok(Dim::var(self.int("an unknown's number")?));
        }
        if self
            .peek()
            .is_some_and(|c| is_word_char(c) && !c.is_ascii_digit())
        {
            return Ok(Dim::sym(self.word()));
        }
        Err(self.error(format!("expected a size, found {}", self.found())))
    }

    /// After `result`: ` NAME = %N`.
    fn result_line(&mut self) -> Result<(String, usize), ParseError> {
        self.skip_ws();
        // Names have spaces (`out h`, `save z`): the name runs to the last `=`.
        let Some(eq) = self.rest().rfind('=') else {
            return Err(self.error("expected `NAME = %N` after `result`"));
        };
        let name = self.rest()[..eq].trim_end().to_string();
        if name.is_empty() {
            return Err(self.error("expected the result's name"));
        }
        self.pos += eq + 1;
        self.skip_ws();
        self.expect('%', "`%N`, the node of the result")?;
        let n = self.int("a node number")?;
        self.at_end()?;
        Ok((name, n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::print;

    fn round_trip(text: &str) {
        let g = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(print::text(&g, "g"), text);
    }

    #[test]
    fn every_op_reads_back() {
        // Every op, so that one added to `Op` without a reading fails here.
        let text = "g
  %0 = arg W : [H, H+X]
  %1 = arg x[t] : [B, X]
  %2 = arg saved s1 : [B]
  %3 = const 1.0 : []
  %4 = const -2.5e-7 : []
  %5 = const NaN : []
  %6 = const -inf : []
  %7 = size 4*H-1 : []
  %8 = zeros : [B, 2*H+X]
  %9 = neg %1 : [B, X]
  %10 = exp %9 : [B, X]
  %11 = log %10 : [B, X]
  %12 = tanh %11 : [B, X]
  %13 = sigmoid %12 : [B, X]
  %14 = relu %13 : [B, X]
  %15 = abs %14 : [B, X]
  %16 = sqrt %15 : [B, X]
  %17 = softplus %16 : [B, X]
  %18 = step %17 : [B, X]
  %19 = sign %18 : [B, X]
  %20 = add %19, %3 : [B, X]
  %21 = sub %20, %3 : [B, X]
  %22 = mul %21, %3 : [B, X]
  %23 = div %22, %3 : [B, X]
  %24 = concat %1, %1 : [B, 2*X]
  %25 = matvec %0, %24 : [B, H]  # a label
  %26 = matTvec %0, %25 : [B, H+X]
  %27 = outer %25, %26 : [B, H, H+X]
  %28 = outer_sum %25, %26 : [H, H+X]
  %29 = slice[H; X] %26 : [B, X]
  %30 = sum %29 : [B]
  %31 = max %29 : [B]
  %32 = argmax_mask %29 : [B, X]
  %33 = broadcast[H, X] %30 : [B, H, X]
  %34 = broadcast[] %3 : []
  %35 = batch_sum %27 : [H, H+X]
  %36 = stop_gradient %35 : [H, H+X]
  %37 = size ?3 : [?1, -H+2]
  result y = %36
  result out h = %25
";
        round_trip(text);
        let g = parse(text).unwrap();
        let mut seen = Vec::new();
        for n in g.node_ids() {
            // An exhaustive match: a new op fails to compile until it is listed.
            let k = match &g.node(n).op {
                Op::Arg(_) => 0,
                Op::Const(_) => 1,
                Op::DimSize(_) => 2,
                Op::Zeros(_) => 3,
                Op::Unary(_) => 4,
                Op::Binary(_) => 5,
                Op::MatVec => 6,
                Op::MatTVec => 7,
                Op::Outer => 8,
                Op::OuterSum => 9,
                Op::Concat => 10,
                Op::Slice { .. } => 11,
                Op::Sum => 12,
                Op::Max => 13,
                Op::ArgMaxMask => 14,
                Op::Broadcast(_) => 15,
                Op::BatchSum => 16,
                Op::StopGradient => 17,
            };
            seen.push(k);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen, (0..18).collect::<Vec<_>>());
        assert_eq!(g.args.len(), 3);
        assert_eq!(
            g.node(NodeId::new(8)).op,
            Op::Zeros(g.node(NodeId::new(8)).ty.clone())
        );
    }

    #[test]
    fn forms_for_invalid_graphs_read_back() {
        round_trip(
            "g
  %0 = arg x : [B]
  %1 = arg0 %0 : [B]
  %2 = arg4 : []
  %3 = neg %4 : [B]
  %4 = neg %0 : [B]
  %5 = add %0@1, %4@3 : [B]
  result r = %9
",
        );
        let g = parse("t\n  %0 = arg x : [B]\n  %1 = add %0@1, %0@3 : [B]\n").unwrap();
        let mut w: Vec<u32> = g.dag.edge_weights().copied().collect();
        w.sort();
        assert_eq!(w, vec![1, 3]);
        // Written in order, positions are the list's.
        let g = parse("t\n  %0 = arg x : [B]\n  %1 = add %0, %0 : [B]\n").unwrap();
        let mut w: Vec<u32> = g.dag.edge_weights().copied().collect();
        w.sort();
        assert_eq!(w, vec![0, 1]);
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            ("g\n  %1 = arg x : [B]\n", 2, 4, "expected %0, found %1"),
            ("g\n  %0 = frob : [B]\n", 2, 8, "unknown op `frob`"),
            ("g\n  %0 = neg %3 : [B]\n", 2, 12, "there is no node %3"),
            ("g\n  %0 = zeros : [B, H+]\n", 2, 22, "expected a size"),
            ("g\n  %0 = zeros [B]\n", 2, 14, "expected `:`"),
            ("g\n  %0 = const x : []\n", 2, 14, "expected a number"),
            ("g\n  %0 = arg : [B]\n", 2, 12, "argument's name"),
            ("g\n  result = %0\n", 2, 10, "result's name"),
            ("g\n  %0 = zeros : [B] junk\n", 2, 20, "unexpected `junk`"),
            ("g\nmore title\n", 2, 1, "expected a node"),
            (
                "g\n  %0 = zeros : [99999999999999999999]\n",
                2,
                17,
                "too large",
            ),
        ];
        for (text, line, column, needle) in cases {
            let e = parse(text).expect_err(text);
            assert!(
                e.line == line && e.column == column && e.message.contains(needle),
                "{text:?}: got {e}, want {line}:{column} {needle}"
            );
        }
    }
}
