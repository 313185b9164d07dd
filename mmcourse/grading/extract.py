"""Read the graded functions out of a notebook without running it.

Every code cell is parsed with ``ast`` (IPython magics translated first); from its top-level
statements only the *definitions* are kept: imports, ``def`` and ``class`` statements, and
assignments of literal constants (``N = 3``). Everything else -- calls, loops, the ``check``
cells, a ``sys.exit()``, a monkeypatch of ``torch`` -- is dropped, so the module that the
sandbox executes is what the student defined, not what the notebook did. A cell with a syntax
error is skipped and reported (the functions in it are then missing).

``scan`` lists the names a part's function reaches (its body and the helpers it calls) that the
part forbids, and the dangerous built-ins (``eval``, ``exec``, ``open``, ``__import__``, ...)
that no graded function needs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

ALWAYS_FORBIDDEN = frozenset({"eval", "exec", "compile", "__import__", "importlib", "open", "globals",
                              "locals", "vars", "__builtins__", "subprocess", "system", "popen",
                              "breakpoint", "getattr", "setattr", "delattr", "__dict__", "__code__",
                              "__globals__", "__getattribute__", "sys", "builtins", "ctypes", "_C",
                              "os", "pickle", "marshal"})


@dataclass
class Extracted:
    source: str                                     # the module the sandbox executes
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)   # local name -> dotted origin
    notes: list[str] = field(default_factory=list)


def _transform(source: str) -> str:
    """IPython syntax (``%magic``, ``!cmd``, ``x?``) → plain Python."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    return TransformerManager().transform_cell(source)


def _is_constant(node: ast.AST) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def _keep(node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, ast.Assign):
        return all(isinstance(t, ast.Name) for t in node.targets) and _is_constant(node.value)
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.value is not None and _is_constant(node.value)
    return False


def extract(nb_path) -> Extracted:
    """The definitions of every parsable code cell of ``nb_path``, in notebook order."""
    import nbformat  # here, not at the top: it is slow to import (jsonschema)

    nb = nbformat.read(str(nb_path), as_version=4)
    out = Extracted(source="")
    kept: list[ast.stmt] = []
    for index, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse(_transform(cell.source))
        except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
            line = getattr(err, "lineno", None)
            out.notes.append(f"cell {index}: syntax error{f' on line {line}' if line else ''} "
                             f"({type(err).__name__}: {getattr(err, 'msg', err)}); its code was skipped")
            continue
        for node in tree.body:
            if not _keep(node):
                continue
            kept.append(node)
            if isinstance(node, ast.FunctionDef):
                out.functions[node.name] = node
            elif isinstance(node, ast.ClassDef):
                out.functions.pop(node.name, None)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    top = a.name.split(".")[0]
                    out.imports[a.asname or top] = a.name if a.asname else top
            elif isinstance(node, ast.ImportFrom):
                for a in node.names:
                    out.imports[a.asname or a.name] = f"{node.module or ''}.{a.name}"
    out.source = ast.unparse(ast.Module(body=kept, type_ignores=[]))
    return out


def _names(node: ast.AST, variables: bool = True) -> set[str]:
    """Identifiers in ``node``: variables (unless ``variables=False``), attributes, imported
    names and identifier-like string constants."""
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            if variables:
                names.add(n.id)
        elif isinstance(n, ast.Attribute):
            names.add(n.attr)
        elif isinstance(n, ast.alias):
            names.update(n.name.split("."))
            if n.asname:
                names.add(n.asname)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.isidentifier():
            names.add(n.value)
    return names


def reachable(ex: Extracted, function: str) -> list[ast.FunctionDef]:
    """``function`` and the module-level functions it calls, transitively."""
    todo, seen = [function], {}
    while todo:
        name = todo.pop()
        if name in seen or name not in ex.functions:
            continue
        seen[name] = ex.functions[name]
        todo.extend(_names(seen[name]) & set(ex.functions))
    return list(seen.values())


def _own_names(fn: ast.FunctionDef) -> set[str]:
    """Names the function binds itself (arguments, assignments, nested defs): a local variable
    called ``linear`` is not ``F.linear``."""
    own = set()
    for n in ast.walk(fn):
        if isinstance(n, ast.arg):
            own.add(n.arg)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            own.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n is not fn:
            own.add(n.name)
    return own


def scan(ex: Extracted, function: str, forbidden: tuple[str, ...]) -> list[str]:
    """Forbidden names used by ``function`` or a helper it calls (import aliases resolved).

    Attributes (``F.conv2d``), imported names and identifier-like strings (``getattr(F,
    "conv2d")``) count; the student's own functions and local variables do not (a helper
    called ``softmax`` is scanned as a function of its own).
    """
    banned = set(forbidden) | ALWAYS_FORBIDDEN
    found = set()
    for fn in reachable(ex, function):
        skip = (_own_names(fn) | set(ex.functions)) - set(ex.imports)
        variables = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} - skip
        for name in variables | _names(fn, variables=False):
            origin = ex.imports.get(name, "")
            parts = {name, *origin.split(".")} if origin else {name}
            found |= parts & banned
    return sorted(found)
