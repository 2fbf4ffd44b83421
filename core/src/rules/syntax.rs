//! Walks over a compiled rule file's syntax tree: what compiling a rule
//! set reads from the functions without running them.

use rhai::{AST, ASTNode, Expr};

/// Call `visit` with each function or method call inside the file's
/// functions: its name, and the argument after its subject (`x` in both
/// `matches(text, x)` and `text.matches(x)`), when there is one.
pub(crate) fn each_call(ast: &AST, mut visit: impl FnMut(&str, Option<&Expr>)) {
    ast.clone_functions_only().walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, _))) => visit(&call.name, call.args.get(1)),
            Some(ASTNode::Expr(Expr::MethodCall(call, _))) => {
                visit(&call.name, call.args.first());
            }
            _ => {}
        }
        true
    });
}
