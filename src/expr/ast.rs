//! The syntax tree of the JavaScript subset: expressions, statements and function literals.

use std::rc::Rc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Not,
    Neg,
    Plus,
    BitNot,
    Typeof,
    Void,
    Delete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    StrictEq,
    StrictNe,
    Lt,
    Gt,
    Le,
    Ge,
    In,
    Instanceof,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
    UShr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogicalOp {
    And,
    Or,
}

#[derive(Debug)]
pub(crate) enum Expr {
    Num(f64),
    Str(Rc<str>),
    Bool(bool),
    Null,
    Regex {
        source: Rc<str>,
        flags: Rc<str>,
    },
    Array(Vec<Expr>),
    Object(Vec<(Rc<str>, Expr)>),
    Ident(Rc<str>),
    This,
    Member(Box<Expr>, Rc<str>),
    Index(Box<Expr>, Box<Expr>),
    Call(Box<Expr>, Vec<Expr>),
    New(Box<Expr>, Vec<Expr>),
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Logical(LogicalOp, Box<Expr>, Box<Expr>),
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `target = value` or a compound `target op= value`.
    Assign(Box<Expr>, Option<BinaryOp>, Box<Expr>),
    /// `++x`, `x--`: (is_increment, is_prefix, target).
    Update(bool, bool, Box<Expr>),
    Function(Rc<FunctionDef>),
    Comma(Vec<Expr>),
    /// A `${...}` body made of statements (`${var x = 1; x + 1}`), run like a function body
    /// whose `this` is the params.
    Program(Rc<FunctionDef>),
}

#[derive(Debug)]
pub(crate) struct FunctionDef {
    pub(crate) name: Option<Rc<str>>,
    pub(crate) params: Vec<Rc<str>>,
    pub(crate) body: Vec<Stmt>,
}

#[derive(Debug)]
pub(crate) enum Stmt {
    Expr(Expr),
    Var(Vec<(Rc<str>, Option<Expr>)>),
    Return(Option<Expr>),
    If(Expr, Box<Stmt>, Option<Box<Stmt>>),
    For {
        init: Option<Box<Stmt>>,
        test: Option<Expr>,
        update: Option<Expr>,
        body: Box<Stmt>,
    },
    /// `for (var k in obj)` / `for (k in obj)`.
    ForIn(Rc<str>, Expr, Box<Stmt>),
    While(Expr, Box<Stmt>),
    DoWhile(Box<Stmt>, Expr),
    Block(Vec<Stmt>),
    /// `switch (x) { case a: ... default: ... }`: the cases in order, `None` for `default`.
    Switch(Expr, Vec<(Option<Expr>, Vec<Stmt>)>),
    Throw(Expr),
    /// `try { } catch (e) { } finally { }`.
    Try {
        body: Vec<Stmt>,
        catch: Option<(Rc<str>, Vec<Stmt>)>,
        finally: Option<Vec<Stmt>>,
    },
    Function(Rc<FunctionDef>),
    Break,
    Continue,
    Empty,
}

/// A name a function body declares, as ES5 hoisting sees it (`var`, `for (x in ...)`,
/// function declarations, and a `catch` parameter).
pub(crate) enum Declaration<'a> {
    /// `var x` or `for (x in ...)`: the variable exists from the top of the body.
    Var(&'a Rc<str>),
    /// `function f() {}`: `f` is bound to the function from the top of the body.
    Function(&'a Rc<FunctionDef>),
    /// `catch (e)`: block-scoped in JavaScript.
    CatchParam(&'a Rc<str>),
}

/// Visits every declaration of a function body, descending into nested statements but not
/// into nested functions (they have their own scope): the one hoisting walk that the
/// interpreter and `spade check` share.
pub(crate) fn visit_declarations<'a>(body: &'a [Stmt], visit: &mut impl FnMut(Declaration<'a>)) {
    for s in body {
        match s {
            Stmt::Var(decls) => decls.iter().for_each(|(n, _)| visit(Declaration::Var(n))),
            Stmt::Function(def) => visit(Declaration::Function(def)),
            Stmt::ForIn(name, _, body) => {
                visit(Declaration::Var(name));
                visit_declarations(std::slice::from_ref(&**body), visit);
            }
            Stmt::If(_, yes, no) => {
                visit_declarations(std::slice::from_ref(&**yes), visit);
                if let Some(no) = no {
                    visit_declarations(std::slice::from_ref(&**no), visit);
                }
            }
            Stmt::For { init, body, .. } => {
                if let Some(init) = init {
                    visit_declarations(std::slice::from_ref(&**init), visit);
                }
                visit_declarations(std::slice::from_ref(&**body), visit);
            }
            Stmt::While(_, body) | Stmt::DoWhile(body, _) => {
                visit_declarations(std::slice::from_ref(&**body), visit);
            }
            Stmt::Block(body) => visit_declarations(body, visit),
            Stmt::Switch(_, cases) => {
                for (_, body) in cases {
                    visit_declarations(body, visit);
                }
            }
            Stmt::Try {
                body,
                catch,
                finally,
            } => {
                visit_declarations(body, visit);
                if let Some((name, handler)) = catch {
                    visit(Declaration::CatchParam(name));
                    visit_declarations(handler, visit);
                }
                if let Some(finally) = finally {
                    visit_declarations(finally, visit);
                }
            }
            Stmt::Expr(_)
            | Stmt::Return(_)
            | Stmt::Throw(_)
            | Stmt::Break
            | Stmt::Continue
            | Stmt::Empty => {}
        }
    }
}
