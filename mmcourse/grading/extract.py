"""Read the graded functions out of a notebook without running it.

Every code cell is parsed with ``ast`` (IPython magics translated first); from its top-level
statements only the *definitions* are kept: imports, ``def`` and ``class`` statements, and
assignments of literal constants (``N = 3``). Everything else -- calls, loops, the ``check``
cells, a ``sys.exit()``, a monkeypatch of ``torch`` -- is dropped, so the module that the
sandbox executes is what the student defined, not what the notebook did. A cell with a syntax
error is skipped and reported (the functions in it are then missing).

``scan_module`` checks *all* code that would execute -- function bodies, class bodies,
decorators, default values, import lines -- for the names no graded code needs (``os``,
``sys``, ``eval``, ``getattr``, frame and ``gc`` introspection, threads, torch's internals ...):
a statement that names one is not loaded at all (a note says so). ``scan`` lists the names a
part's function reaches (its body, its decorators and defaults, and the functions and classes
it uses, transitively) that the part forbids or that no graded code needs.

Not protected by this module alone: Python lets determined code build a name from strings at
run time. That is why the sandbox also restricts imports and built-ins and bans the forbidden
library functions when they are *called* (``boot.py``); the report keeps the graded source for
a human to read.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

ALWAYS_FORBIDDEN = frozenset({"eval", "exec", "compile", "__import__", "importlib", "open", "globals",
                              "locals", "vars", "__builtins__", "subprocess", "system", "popen",
                              "breakpoint", "getattr", "setattr", "delattr", "__dict__", "__code__",
                              "__globals__", "__getattribute__", "sys", "builtins", "ctypes", "_C",
                              "os", "pickle", "marshal", "attrgetter", "methodcaller", "inspect", "gc",
                              "_getframe", "f_back", "f_globals", "f_locals", "f_builtins", "tb_frame",
                              "gi_frame", "cr_frame", "ag_frame", "__subclasses__", "__bases__", "__base__",
                              "__mro__", "__closure__", "__defaults__", "__kwdefaults__", "__self__",
                              "__func__", "__getattr__", "__main__", "__loader__", "__spec__",
                              "modules", "threading", "_thread", "multiprocessing", "concurrent",
                              "signal", "resource", "socket", "io", "pathlib", "shutil", "tempfile",
                              "traceback", "types", "weakref", "mmap", "faulthandler", "atexit",
                              "asyncio", "overrides", "_python_dispatch", "TorchFunctionMode",
                              "TorchDispatchMode", "__torch_function__", "__torch_dispatch__",
                              "_disable_torch_function", "DisableTorchFunction", "library", "jit",
                              "_dynamo", "_inductor", "cpp_extension", "ctypeslib", "from_file",
                              "fromfile", "tofile", "memmap", "hub", "psutil", "posix"})


@dataclass
class Extracted:
    source: str                                     # the module the sandbox executes
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)   # local name -> dotted origin
    notes: list[str] = field(default_factory=list)
    statements: list[tuple[str, ast.stmt]] = field(default_factory=list)   # (where, statement)


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
            out.statements.append((f"cell {index}, line {node.lineno}", node))
            if isinstance(node, ast.FunctionDef):
                out.functions[node.name] = node
                out.classes.pop(node.name, None)
            elif isinstance(node, ast.ClassDef):
                out.functions.pop(node.name, None)
                out.classes[node.name] = node
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
        elif isinstance(n, ast.ImportFrom) and n.module:
            names.update(n.module.split("."))
        elif isinstance(n, ast.alias):
            names.update(n.name.split("."))
            if n.asname:
                names.add(n.asname)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.isidentifier():
            names.add(n.value)
    return names


def reachable(ex: Extracted, function: str) -> list[ast.FunctionDef | ast.ClassDef]:
    """``function`` and the module-level functions and classes it uses, transitively."""
    defined = {**ex.classes, **ex.functions}
    todo, seen = [function], {}
    while todo:
        name = todo.pop()
        if name in seen or name not in defined:
            continue
        seen[name] = defined[name]
        todo.extend(_names(seen[name]) & set(defined))
    return list(seen.values())


def _own_names(fn: ast.AST) -> set[str]:
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
    found = set()
    for fn in reachable(ex, function):
        found |= _banned_in(ex, fn, set(forbidden) | ALWAYS_FORBIDDEN)
    return sorted(found)


def _banned_in(ex: Extracted, node: ast.AST, banned: set[str]) -> set[str]:
    skip = (_own_names(node) | set(ex.functions) | set(ex.classes)) - set(ex.imports)
    variables = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} - skip
    found = set()
    for name in variables | _names(node, variables=False):
        origin = ex.imports.get(name, "")
        parts = {name, *origin.split(".")} if origin else {name}
        found |= parts & banned
    return found


def scan_module(ex: Extracted) -> tuple[list[tuple[str, str]], list[str]]:
    """The statements the sandbox may execute, as ``(where, source)``, and notes on the others.

    Every statement is scanned whole (bodies, class bodies, decorators, defaults, imports):
    one that names something in ``ALWAYS_FORBIDDEN`` is left out.
    """
    keep, notes = [], []
    for where, node in ex.statements:
        bad = _banned_in(ex, node, set(ALWAYS_FORBIDDEN))
        if bad:
            what = getattr(node, "name", None) or ast.unparse(node).splitlines()[0][:60]
            notes.append(f"{where}: {what} uses {', '.join(sorted(bad))}, which graded code may not "
                         "use; it was not loaded")
        else:
            keep.append((where, ast.unparse(node)))
    return keep, notes
