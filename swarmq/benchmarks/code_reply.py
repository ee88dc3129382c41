"""Python code out of a chat model's reply, as a completion of a function prompt (pure).

A base model continues the prompt with the function's body; a chat model answers with prose, fences, the
whole function, helper functions, imports and usage examples. To score both alike and to keep only code in
the swarm's buffers, a reply becomes a body: the entry point's statements (its docstring dropped) with the
imports, helpers and constants the reply defines nested at its top. When the reply's function takes other
parameters than the prompt's, the body cannot stand in for it: the reply's code then follows the prompt as a
redefinition (``pass`` first, so the prompt's docstring-only function stays valid).
"""

from __future__ import annotations

import ast
import re
import textwrap

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:^[ \t]*```|\Z)", re.DOTALL | re.MULTILINE)
_CODE_LANGS = ("", "python", "py", "python3")
_CODE_START = re.compile(r"^(def |async def |class |import |from \S+ import |@)", re.MULTILINE)


def completion_from_reply(prompt: str, entry_point: str, reply: str) -> str:
    """The completion of ``prompt`` that ``reply`` amounts to (see the module docstring)."""
    blocks = code_blocks(reply) or [unfenced_code(reply)]
    for code in blocks:
        tree = _parse(code)
        fn = _function(tree, entry_point) if tree is not None else None
        if tree is not None and fn is not None:
            if _params(fn) != _prompt_params(prompt, entry_point):
                return "\n    pass\n\n" + code
            return _as_body(code, tree, fn)
    return _indented_body(blocks[0])


def code_blocks(reply: str) -> list[str]:
    """Fenced Python (or unlabelled) blocks in order; an unterminated last fence counts (max_tokens cut
    it)."""
    return [body for lang, body in _FENCE.findall(reply) if lang.lower() in _CODE_LANGS and body.strip()]


def unfenced_code(reply: str) -> str:
    """Code in a reply without fences: from the first line that starts a definition or an import, trimmed
    of trailing prose until it parses; the whole reply when nothing looks like code (a bare body)."""
    start = _CODE_START.search(reply)
    if start is None:
        return reply
    lines = reply[start.start() :].splitlines()
    for end in range(len(lines), 0, -1):
        code = "\n".join(lines[:end]) + "\n"
        if _parse(code) is not None:
            return code
    return reply[start.start() :]


def _parse(code: str) -> ast.Module | None:
    try:
        return ast.parse(code)
    except SyntaxError:
        return None


def _function(tree: ast.Module, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    found = [
        s for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)) and s.name == name
    ]
    return found[-1] if found else None


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    a = fn.args
    return [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)] + [
        p.arg for p in (a.vararg, a.kwarg) if p
    ]


def _prompt_params(prompt: str, entry_point: str) -> list[str] | None:
    tree = _parse(prompt + "    pass\n")
    fn = _function(tree, entry_point) if tree is not None else None
    return _params(fn) if fn is not None else None


def _noise(stmt: ast.stmt) -> bool:
    """Usage examples and self-tests a reply adds: bare expressions, asserts, ``if __name__ == ...``
    blocks."""
    if isinstance(stmt, (ast.Expr, ast.Assert)):
        return True
    return isinstance(stmt, ast.If) and "__name__" in ast.unparse(stmt.test)


def _source(lines: list[str], stmts: list[ast.stmt]) -> str:
    """The statements' own lines (decorators included), dedented."""
    if not stmts:
        return ""
    first = min(min((d.lineno for d in getattr(s, "decorator_list", [])), default=s.lineno) for s in stmts)
    end = max(s.end_lineno or s.lineno for s in stmts)
    return textwrap.dedent("\n".join(lines[first - 1 : end])) + "\n"


def _as_body(code: str, tree: ast.Module, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    lines = code.splitlines()
    body = list(fn.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring: the prompt has its own
    parts = [_source(lines, [s]) for s in tree.body if s is not fn and not _noise(s)]
    if body and body[0].lineno == fn.lineno:  # `def f(x): return x`: the body shares the def's line
        parts.append("".join(ast.unparse(s) + "\n" for s in body))
    else:
        parts.append(_source(lines, body) or "pass\n")
    return textwrap.indent("".join(parts), "    ")


def _indented_body(code: str) -> str:
    """A block that is only a body: indented as the function's, whatever the reply's own indentation."""
    text = textwrap.dedent(code).strip("\n")
    return textwrap.indent(text, "    ") + "\n" if text else ""
