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
    Function(Rc<FunctionDef>),
    Break,
    Continue,
    Empty,
}
