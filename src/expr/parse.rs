//! Recursive-descent parser for the JavaScript subset; one function per production of
//! `grammar/expr.md`.

use super::ast::{BinaryOp, Expr, FunctionDef, LogicalOp, Stmt, UnaryOp};
use super::lexer::{tokenize, Tok, Token};
use std::rc::Rc;

/// A syntax error at a byte offset of the expression source.
#[derive(Debug)]
pub(crate) struct ParseError {
    pub(crate) offset: usize,
    pub(crate) message: String,
    /// The expression nests deeper than [`MAX_DEPTH`]: no reading of it can ever run, so
    /// `spade check` reports it as an error, not a warning.
    pub(crate) too_deep: bool,
}

/// The deepest syntax tree the parser builds. Every nested production counts, and so does
/// every operator of a chain (`a + b + c` is a tree as deep as it is long), so no walk over a
/// tree (evaluation, `spade check`, dropping it) can overflow even a 2 MiB stack.
pub(crate) const MAX_DEPTH: usize = 128;

/// Words that cannot name a variable.
const RESERVED: &[&str] = &[
    "var",
    "function",
    "return",
    "if",
    "else",
    "for",
    "while",
    "do",
    "break",
    "continue",
    "new",
    "typeof",
    "void",
    "delete",
    "in",
    "instanceof",
    "this",
    "true",
    "false",
    "null",
    "let",
    "const",
    "class",
    "switch",
    "case",
    "default",
    "try",
    "catch",
    "finally",
    "throw",
];

/// How many parsed expressions a thread keeps; the cache is cleared when it fills up.
const CACHE_SIZE: usize = 4096;

thread_local! {
    /// Task configs are evaluated again and again with the same expressions, so parsing once
    /// per thread pays for itself (parsing is about a third of evaluating a typical config).
    static CACHE: std::cell::RefCell<std::collections::HashMap<Box<str>, Rc<Expr>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// [`parse_expression`] through a per-thread cache of parsed expressions.
pub(crate) fn parse_cached(src: &str) -> Result<Rc<Expr>, ParseError> {
    if let Some(hit) = CACHE.with(|c| c.borrow().get(src).cloned()) {
        return Ok(hit);
    }
    let parsed = Rc::new(parse_expression(src)?);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_SIZE {
            c.clear();
        }
        c.insert(src.into(), parsed.clone());
    });
    Ok(parsed)
}

/// Parses a whole `${...}` body: one expression (commas allowed), nothing after it.
pub(crate) fn parse_expression(src: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(src).map_err(|e| ParseError {
        offset: e.offset,
        message: e.message,
        too_deep: false,
    })?;
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
    };
    if p.peek() == &Tok::Eof {
        // `${ }`: digdag.js evaluates `( )`, a syntax error (only `${}` is nothing).
        return Err(p.error("expected an expression"));
    }
    let expr_error = match p.expression() {
        Ok(e) if p.peek() == &Tok::Eof => return Ok(e),
        Ok(_) => p.error("expected end of expression"),
        Err(e) if e.too_deep => return Err(e),
        Err(e) => e,
    };
    // Digdag hands the text to JavaScript's `eval`, so statements work too
    // (`${var x = 1; x + 1}`); report whichever reading got further.
    p.pos = 0;
    p.depth = 0;
    match p.program() {
        Ok(program) => Ok(program),
        Err(e) if e.offset > expr_error.offset => Err(e),
        Err(_) => Err(expr_error),
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.pos).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn peek_at(&self, n: usize) -> &Tok {
        self.tokens.get(self.pos + n).map_or(&Tok::Eof, |t| &t.tok)
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .or(self.tokens.last())
            .map_or(0, |t| t.offset)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn error(&self, expected: &str) -> ParseError {
        let found = match self.peek() {
            Tok::Eof => "end of expression".to_string(),
            Tok::Num(n) => format!("number `{n}`"),
            Tok::Str(_) => "a string".to_string(),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Regex(..) => "a regular expression".to_string(),
        };
        ParseError {
            offset: self.offset(),
            message: format!("{expected}, found {found}"),
            too_deep: false,
        }
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::Punct(q) if *q == p)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Ident(q) if &**q == w)
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        let yes = self.is_punct(p);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let yes = self.is_word(w);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn expect_punct(&mut self, p: &str) -> Result<(), ParseError> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            Err(self.error(&format!("expected `{p}`")))
        }
    }

    fn expect_name(&mut self) -> Result<Rc<str>, ParseError> {
        match self.peek().clone() {
            Tok::Ident(name) if !RESERVED.contains(&&*name) => {
                self.pos += 1;
                Ok(name)
            }
            _ => Err(self.error("expected a name")),
        }
    }

    /// Opens one level of the tree being built; [`Parser::leave`] closes it (`n` at once
    /// for chains).
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError {
                offset: self.offset(),
                message: format!(
                    "expression nested deeper than {MAX_DEPTH} levels (each operator of a chain counts as one)"
                ),
                too_deep: true,
            });
        }
        Ok(())
    }

    fn leave(&mut self, n: usize) {
        self.depth = self.depth.saturating_sub(n);
    }

    fn expression(&mut self) -> Result<Expr, ParseError> {
        let first = self.assignment()?;
        if !self.is_punct(",") {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.eat_punct(",") {
            items.push(self.assignment()?);
        }
        Ok(Expr::Comma(items))
    }

    fn assignment(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let target = self.conditional()?;
        let op = match self.peek() {
            Tok::Punct("=") => Some(None),
            Tok::Punct("+=") => Some(Some(BinaryOp::Add)),
            Tok::Punct("-=") => Some(Some(BinaryOp::Sub)),
            Tok::Punct("*=") => Some(Some(BinaryOp::Mul)),
            Tok::Punct("/=") => Some(Some(BinaryOp::Div)),
            Tok::Punct("%=") => Some(Some(BinaryOp::Rem)),
            Tok::Punct("&=") => Some(Some(BinaryOp::BitAnd)),
            Tok::Punct("|=") => Some(Some(BinaryOp::BitOr)),
            Tok::Punct("^=") => Some(Some(BinaryOp::BitXor)),
            Tok::Punct("<<=") => Some(Some(BinaryOp::Shl)),
            Tok::Punct(">>=") => Some(Some(BinaryOp::Shr)),
            Tok::Punct(">>>=") => Some(Some(BinaryOp::UShr)),
            _ => None,
        };
        let result = match op {
            Some(op) => {
                if !matches!(target, Expr::Ident(_) | Expr::Member(..) | Expr::Index(..)) {
                    return Err(self.error("invalid assignment target before"));
                }
                self.pos += 1;
                let value = self.assignment()?;
                Expr::Assign(Box::new(target), op, Box::new(value))
            }
            None => target,
        };
        self.leave(1);
        Ok(result)
    }

    fn conditional(&mut self) -> Result<Expr, ParseError> {
        let test = self.binary(0)?;
        if !self.eat_punct("?") {
            return Ok(test);
        }
        let yes = self.assignment()?;
        self.expect_punct(":")?;
        let no = self.assignment()?;
        Ok(Expr::Cond(Box::new(test), Box::new(yes), Box::new(no)))
    }

    /// Binary operators by precedence climbing; level 0 is `||`. Each operator of a chain
    /// makes the (left-leaning) tree one level deeper, so each one counts as a level.
    fn binary(&mut self, min_prec: u8) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        let mut levels = 0;
        while let Some((prec, op)) = self.binary_op() {
            if prec < min_prec {
                break;
            }
            self.enter()?;
            levels += 1;
            self.pos += 1;
            let right = self.binary(prec + 1)?;
            left = match op {
                Op::Logical(op) => Expr::Logical(op, Box::new(left), Box::new(right)),
                Op::Binary(op) => Expr::Binary(op, Box::new(left), Box::new(right)),
            };
        }
        self.leave(levels);
        Ok(left)
    }

    fn binary_op(&self) -> Option<(u8, Op)> {
        use BinaryOp as B;
        let (prec, op) = match self.peek() {
            Tok::Punct("||") => (0, Op::Logical(LogicalOp::Or)),
            Tok::Punct("&&") => (1, Op::Logical(LogicalOp::And)),
            Tok::Punct("|") => (2, Op::Binary(B::BitOr)),
            Tok::Punct("^") => (3, Op::Binary(B::BitXor)),
            Tok::Punct("&") => (4, Op::Binary(B::BitAnd)),
            Tok::Punct("==") => (5, Op::Binary(B::Eq)),
            Tok::Punct("!=") => (5, Op::Binary(B::Ne)),
            Tok::Punct("===") => (5, Op::Binary(B::StrictEq)),
            Tok::Punct("!==") => (5, Op::Binary(B::StrictNe)),
            Tok::Punct("<") => (6, Op::Binary(B::Lt)),
            Tok::Punct(">") => (6, Op::Binary(B::Gt)),
            Tok::Punct("<=") => (6, Op::Binary(B::Le)),
            Tok::Punct(">=") => (6, Op::Binary(B::Ge)),
            Tok::Ident(w) if &**w == "in" => (6, Op::Binary(B::In)),
            Tok::Ident(w) if &**w == "instanceof" => (6, Op::Binary(B::Instanceof)),
            Tok::Punct("<<") => (7, Op::Binary(B::Shl)),
            Tok::Punct(">>") => (7, Op::Binary(B::Shr)),
            Tok::Punct(">>>") => (7, Op::Binary(B::UShr)),
            Tok::Punct("+") => (8, Op::Binary(B::Add)),
            Tok::Punct("-") => (8, Op::Binary(B::Sub)),
            Tok::Punct("*") => (9, Op::Binary(B::Mul)),
            Tok::Punct("/") => (9, Op::Binary(B::Div)),
            Tok::Punct("%") => (9, Op::Binary(B::Rem)),
            _ => return None,
        };
        Some((prec, op))
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let op = match self.peek() {
            Tok::Punct("!") => Some(UnaryOp::Not),
            Tok::Punct("-") => Some(UnaryOp::Neg),
            Tok::Punct("+") => Some(UnaryOp::Plus),
            Tok::Punct("~") => Some(UnaryOp::BitNot),
            Tok::Ident(w) if &**w == "typeof" => Some(UnaryOp::Typeof),
            Tok::Ident(w) if &**w == "void" => Some(UnaryOp::Void),
            Tok::Ident(w) if &**w == "delete" => Some(UnaryOp::Delete),
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            self.enter()?;
            let operand = self.unary()?;
            self.leave(1);
            return Ok(Expr::Unary(op, Box::new(operand)));
        }
        for (p, inc) in [("++", true), ("--", false)] {
            if self.is_punct(p) {
                let offset = self.offset();
                self.pos += 1;
                self.enter()?;
                let target = self.unary()?;
                self.leave(1);
                return Ok(Expr::Update(
                    inc,
                    true,
                    Box::new(Self::update_target(target, offset, p)?),
                ));
            }
        }
        self.postfix()
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let offset = self.offset();
        let e = self.call_member()?;
        for (p, inc) in [("++", true), ("--", false)] {
            // `a\n++b` is `a; ++b` in JavaScript, so a postfix operator stays on its line.
            if self.is_punct(p) && !self.tokens.get(self.pos).is_some_and(|t| t.newline_before) {
                self.pos += 1;
                return Ok(Expr::Update(
                    inc,
                    false,
                    Box::new(Self::update_target(e, offset, p)?),
                ));
            }
        }
        Ok(e)
    }

    /// `++`/`--` need a variable or property to change (ES5 11.3 and 11.4.4: anything else
    /// is an early error), so `++++x` is refused here rather than at run time.
    fn update_target(target: Expr, offset: usize, op: &str) -> Result<Expr, ParseError> {
        if matches!(target, Expr::Ident(_) | Expr::Member(..) | Expr::Index(..)) {
            return Ok(target);
        }
        Err(ParseError {
            offset,
            message: format!("invalid operand of `{op}`: it needs a variable or a property"),
            too_deep: false,
        })
    }

    fn call_member(&mut self) -> Result<Expr, ParseError> {
        let mut e = if self.eat_word("new") {
            self.enter()?;
            let callee = self.new_callee()?;
            self.leave(1);
            let args = if self.is_punct("(") {
                self.arguments()?
            } else {
                Vec::new()
            };
            Expr::New(Box::new(callee), args)
        } else {
            self.primary()?
        };
        // Each link of `a.b(c)[d]` wraps the tree built so far: one level each.
        let mut levels = 0;
        while self.is_punct(".") || self.is_punct("[") || self.is_punct("(") {
            self.enter()?;
            levels += 1;
            e = self.call_member_link(e)?;
        }
        self.leave(levels);
        Ok(e)
    }

    /// One `.name`, `[index]` or `(arguments)` after an operand.
    fn call_member_link(&mut self, e: Expr) -> Result<Expr, ParseError> {
        if self.eat_punct(".") {
            let Tok::Ident(name) = self.peek().clone() else {
                return Err(self.error("expected a property name after `.`"));
            };
            self.pos += 1;
            Ok(Expr::Member(Box::new(e), name))
        } else if self.eat_punct("[") {
            let index = self.expression()?;
            self.expect_punct("]")?;
            Ok(Expr::Index(Box::new(e), Box::new(index)))
        } else {
            let args = self.arguments()?;
            Ok(Expr::Call(Box::new(e), args))
        }
    }

    /// The constructor after `new`: a primary with member accesses, but no call.
    fn new_callee(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.primary()?;
        let mut levels = 0;
        while self.eat_punct(".") {
            self.enter()?;
            levels += 1;
            let name = self.expect_name()?;
            e = Expr::Member(Box::new(e), name);
        }
        self.leave(levels);
        Ok(e)
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, ParseError> {
        self.expect_punct("(")?;
        let mut args = Vec::new();
        while !self.eat_punct(")") {
            args.push(self.assignment()?);
            if !self.is_punct(")") {
                self.expect_punct(",")?;
            }
        }
        Ok(args)
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let e = match self.next() {
            Tok::Num(n) => Expr::Num(n),
            Tok::Str(s) => Expr::Str(s),
            Tok::Regex(source, flags) => Expr::Regex { source, flags },
            Tok::Punct("(") => {
                let e = self.expression()?;
                self.expect_punct(")")?;
                e
            }
            Tok::Punct("[") => self.array_literal()?,
            Tok::Punct("{") => self.object_literal()?,
            Tok::Ident(w) => match &*w {
                "true" => Expr::Bool(true),
                "false" => Expr::Bool(false),
                "null" => Expr::Null,
                "this" => Expr::This,
                "function" => Expr::Function(self.function_rest()?),
                _ if RESERVED.contains(&&*w) => {
                    self.pos -= 1;
                    return Err(self.error("expected an expression"));
                }
                _ => Expr::Ident(w),
            },
            _ => {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.error("expected an expression"));
            }
        };
        self.leave(1);
        Ok(e)
    }

    /// `[a, , b]`: an elision is a hole, read as `undefined`; a final comma adds nothing.
    fn array_literal(&mut self) -> Result<Expr, ParseError> {
        let mut items = Vec::new();
        while !self.eat_punct("]") {
            if self.eat_punct(",") {
                items.push(Expr::Ident("undefined".into()));
                continue;
            }
            items.push(self.assignment()?);
            if !self.is_punct("]") {
                self.expect_punct(",")?;
            }
        }
        Ok(Expr::Array(items))
    }

    fn object_literal(&mut self) -> Result<Expr, ParseError> {
        let mut props = Vec::new();
        while !self.eat_punct("}") {
            let key: Rc<str> = match self.next() {
                Tok::Ident(s) | Tok::Str(s) => s,
                Tok::Num(n) => super::value::number_to_string(n).into(),
                _ => {
                    self.pos -= 1;
                    return Err(self.error("expected a property name"));
                }
            };
            self.expect_punct(":")?;
            props.push((key, self.assignment()?));
            if !self.is_punct("}") {
                self.expect_punct(",")?;
            }
        }
        Ok(Expr::Object(props))
    }

    /// After `function`: optional name, parameters and body.
    fn function_rest(&mut self) -> Result<Rc<FunctionDef>, ParseError> {
        let name = match self.peek() {
            Tok::Ident(_) => Some(self.expect_name()?),
            _ => None,
        };
        self.expect_punct("(")?;
        let mut params = Vec::new();
        while !self.eat_punct(")") {
            params.push(self.expect_name()?);
            if !self.is_punct(")") {
                self.expect_punct(",")?;
            }
        }
        self.expect_punct("{")?;
        let mut body = Vec::new();
        while !self.eat_punct("}") {
            if self.peek() == &Tok::Eof {
                return Err(self.error("expected `}`"));
            }
            body.push(self.statement()?);
        }
        Ok(Rc::new(FunctionDef { name, params, body }))
    }

    /// Statements up to the end: the body of an [`Expr::Program`]. The last statement, when
    /// it is an expression, gives the value (JavaScript's completion value, simplified).
    fn program(&mut self) -> Result<Expr, ParseError> {
        let mut body = Vec::new();
        while self.peek() != &Tok::Eof {
            body.push(self.statement()?);
        }
        if let Some(Stmt::Expr(_)) = body.last() {
            if let Some(Stmt::Expr(e)) = body.pop() {
                body.push(Stmt::Return(Some(e)));
            }
        }
        Ok(Expr::Program(Rc::new(FunctionDef {
            name: None,
            params: Vec::new(),
            body,
        })))
    }

    /// A statement ends at `;`, or (automatic semicolon insertion) before `}`, at the end,
    /// or at a line break.
    fn end_statement(&mut self) -> Result<(), ParseError> {
        if self.eat_punct(";") || self.is_punct("}") || self.peek() == &Tok::Eof {
            return Ok(());
        }
        if self.tokens.get(self.pos).is_some_and(|t| t.newline_before) {
            return Ok(());
        }
        Err(self.error("expected `;`"))
    }

    fn statement(&mut self) -> Result<Stmt, ParseError> {
        self.enter()?;
        let s = self.statement_inner()?;
        self.leave(1);
        Ok(s)
    }

    fn statement_inner(&mut self) -> Result<Stmt, ParseError> {
        if self.eat_punct(";") {
            return Ok(Stmt::Empty);
        }
        if self.eat_punct("{") {
            let mut body = Vec::new();
            while !self.eat_punct("}") {
                if self.peek() == &Tok::Eof {
                    return Err(self.error("expected `}`"));
                }
                body.push(self.statement()?);
            }
            return Ok(Stmt::Block(body));
        }
        let word = match self.peek() {
            Tok::Ident(w) => w.clone(),
            _ => "".into(),
        };
        match &*word {
            "var" => {
                self.pos += 1;
                let s = self.var_declarations()?;
                self.end_statement()?;
                Ok(s)
            }
            "function" if matches!(self.peek_at(1), Tok::Ident(_)) => {
                self.pos += 1;
                Ok(Stmt::Function(self.function_rest()?))
            }
            "return" => {
                self.pos += 1;
                let value = if self.is_punct(";") || self.is_punct("}") || self.peek() == &Tok::Eof
                {
                    None
                } else {
                    Some(self.expression()?)
                };
                self.end_statement()?;
                Ok(Stmt::Return(value))
            }
            "if" => {
                self.pos += 1;
                self.expect_punct("(")?;
                let test = self.expression()?;
                self.expect_punct(")")?;
                let yes = self.statement()?;
                let no = if self.eat_word("else") {
                    Some(Box::new(self.statement()?))
                } else {
                    None
                };
                Ok(Stmt::If(test, Box::new(yes), no))
            }
            "while" => {
                self.pos += 1;
                self.expect_punct("(")?;
                let test = self.expression()?;
                self.expect_punct(")")?;
                Ok(Stmt::While(test, Box::new(self.statement()?)))
            }
            "do" => {
                self.pos += 1;
                let body = self.statement()?;
                if !self.eat_word("while") {
                    return Err(self.error("expected `while`"));
                }
                self.expect_punct("(")?;
                let test = self.expression()?;
                self.expect_punct(")")?;
                self.end_statement()?;
                Ok(Stmt::DoWhile(Box::new(body), test))
            }
            "for" => {
                self.pos += 1;
                self.for_statement()
            }
            "break" => {
                self.pos += 1;
                self.end_statement()?;
                Ok(Stmt::Break)
            }
            "switch" => {
                self.pos += 1;
                self.switch_statement()
            }
            "throw" => {
                self.pos += 1;
                let value = self.expression()?;
                self.end_statement()?;
                Ok(Stmt::Throw(value))
            }
            "try" => {
                self.pos += 1;
                self.try_statement()
            }
            "continue" => {
                self.pos += 1;
                self.end_statement()?;
                Ok(Stmt::Continue)
            }
            _ => {
                let e = self.expression()?;
                self.end_statement()?;
                Ok(Stmt::Expr(e))
            }
        }
    }

    /// A `{ statement* }` block, as `try`, `catch` and `finally` require.
    fn block(&mut self) -> Result<Vec<Stmt>, ParseError> {
        self.expect_punct("{")?;
        let mut body = Vec::new();
        while !self.eat_punct("}") {
            if self.peek() == &Tok::Eof {
                return Err(self.error("expected `}`"));
            }
            body.push(self.statement()?);
        }
        Ok(body)
    }

    fn switch_statement(&mut self) -> Result<Stmt, ParseError> {
        self.expect_punct("(")?;
        let subject = self.expression()?;
        self.expect_punct(")")?;
        self.expect_punct("{")?;
        let mut cases = Vec::new();
        while !self.eat_punct("}") {
            let test = if self.eat_word("case") {
                Some(self.expression()?)
            } else if self.eat_word("default") {
                None
            } else {
                return Err(self.error("expected `case` or `default`"));
            };
            self.expect_punct(":")?;
            let mut body = Vec::new();
            while !(self.is_word("case") || self.is_word("default") || self.is_punct("}")) {
                if self.peek() == &Tok::Eof {
                    return Err(self.error("expected `}`"));
                }
                body.push(self.statement()?);
            }
            cases.push((test, body));
        }
        Ok(Stmt::Switch(subject, cases))
    }

    fn try_statement(&mut self) -> Result<Stmt, ParseError> {
        let body = self.block()?;
        let catch = if self.eat_word("catch") {
            self.expect_punct("(")?;
            let name = self.expect_name()?;
            self.expect_punct(")")?;
            Some((name, self.block()?))
        } else {
            None
        };
        let finally = if self.eat_word("finally") {
            Some(self.block()?)
        } else {
            None
        };
        if catch.is_none() && finally.is_none() {
            return Err(self.error("expected `catch` or `finally`"));
        }
        Ok(Stmt::Try {
            body,
            catch,
            finally,
        })
    }

    fn var_declarations(&mut self) -> Result<Stmt, ParseError> {
        let mut decls = Vec::new();
        loop {
            let name = self.expect_name()?;
            let init = if self.eat_punct("=") {
                Some(self.assignment()?)
            } else {
                None
            };
            decls.push((name, init));
            if !self.eat_punct(",") {
                return Ok(Stmt::Var(decls));
            }
        }
    }

    fn for_statement(&mut self) -> Result<Stmt, ParseError> {
        self.expect_punct("(")?;
        // `for (var k in obj)` / `for (k in obj)`
        let var_offset = usize::from(self.is_word("var"));
        if let (Tok::Ident(name), Tok::Ident(kw)) = (
            self.peek_at(var_offset).clone(),
            self.peek_at(var_offset + 1),
        ) {
            if &**kw == "in" && !RESERVED.contains(&&*name) {
                self.pos += var_offset + 2;
                let object = self.expression()?;
                self.expect_punct(")")?;
                let body = self.statement()?;
                return Ok(Stmt::ForIn(name, object, Box::new(body)));
            }
        }
        let init = if self.is_punct(";") {
            None
        } else if self.eat_word("var") {
            Some(Box::new(self.var_declarations()?))
        } else {
            Some(Box::new(Stmt::Expr(self.expression()?)))
        };
        self.expect_punct(";")?;
        let test = if self.is_punct(";") {
            None
        } else {
            Some(self.expression()?)
        };
        self.expect_punct(";")?;
        let update = if self.is_punct(")") {
            None
        } else {
            Some(self.expression()?)
        };
        self.expect_punct(")")?;
        let body = self.statement()?;
        Ok(Stmt::For {
            init,
            test,
            update,
            body: Box::new(body),
        })
    }
}

enum Op {
    Logical(LogicalOp),
    Binary(BinaryOp),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_precedence_and_functions() {
        let e = parse_expression("1 + 2 * 3").unwrap();
        assert!(matches!(e, Expr::Binary(BinaryOp::Add, _, _)));
        assert!(parse_expression("v.map(function(x){ var y = x * 5; return y })").is_ok());
        assert!(parse_expression("a ? b : c ? d : e").is_ok());
    }

    #[test]
    fn reports_offset_of_error() {
        let err = parse_expression("1 + ").unwrap_err();
        assert_eq!(err.offset, 4);
        assert!(err.message.contains("expected an expression"));
        assert!(parse_expression("a b").is_err());
    }

    #[test]
    fn refuses_deep_nesting() {
        let src = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        assert!(parse_expression(&src).is_err());
    }
}
