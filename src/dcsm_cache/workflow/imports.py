"""What a module of the package computes with: the package modules it imports, followed to a closure, read from the
source and never imported.

    closure(package, [package / "pipeline/tasks/zeroshot.py"])    # {.../zeroshot.py, .../reading.py, ...}
    command_roots(package, "eval")                                 # the files `dcsm-cache eval` imports

A module's imports are every `from ... import` and `import dcsm_cache...` in its text, at module level
or inside a function (`scan`): the code a stage runs is the code it may call. A name taken from a
package is followed to the module that defines it, through the package's re-exports (`resolve`): a
module importing `CachedDataset` from `dcsm/` depends on `dcsm/cache.py`, not on the scorer its
`__init__` also re-exports. A name no file binds (a package's `__getattr__`) means the whole package.
A data folder of the package (`model_configs/`) belongs to the modules that name it. Left out, as
plumbing that does not change what a stage computes: the errors, config, atomic writes, progress
bars, fault points, core counts, the heap and ISA settings, the open_clip guard, the CLI and this
workflow package (`PLUMBING`).

A command's roots (`command_roots`) are what the click command's function imports, inside its body
or at its module's level and used in its body, and what the module's own helpers it calls import;
the command is found by the name click registers it under, read from its decorator (`commands`).
Reading the text takes regular expressions, and `ast` only for a command's own function (parsed alone)
and a package `__init__` that defines a name itself: about 10 ms of CPU for one stage, 30 ms for all,
cached per file and per stage for the process. Tests hold the expressions to `ast` on every module of
the package and the commands to click's own registry.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path
from typing import Iterable

__all__ = ["PLUMBING", "cache_clear", "closure", "command_roots", "commands", "resolve", "scan"]

PLUMBING = (
    *("errors.py", "config.py", "atomic.py", "progress.py", "faults.py", "cores.py", "heap.py", "isa.py"),
    *("_openclip.py", "cli/", "workflow/"),
)
_FROM = re.compile(r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\((?:[^)#]|#[^\n]*)*\)|[^\n]*)", re.M)
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\n]*)", re.M)
_STRINGS = re.compile(r'"""(?:[^\\]|\\.)*?"""|\'\'\'(?:[^\\]|\\.)*?\'\'\'', re.S)  # docstrings: examples, not imports
_SUFFIXES = ("command", "cmd", "group", "grp")  # click strips these from a function's name (click >= 8.2)
# a click command: its decorator, the other decorators (lines that open with @, or go on indented or with ")"), its def
_DECORATED = re.compile(r"^@(\w+)\.(?:command|group)\(([^\n]*)\)[ \t]*\n(?:[@ \t)][^\n]*\n)*?def (\w+)\(", re.M)
_DEF = re.compile(r"^def[ \t]+(\w+)", re.M)
_TOP = re.compile(r"^[^\s)#]", re.M)  # code at column 0: where a module-level function ends (not at a signature's ")")
_GIVEN = re.compile(r"""\s*(?:name\s*=\s*)?["']([^"']+)["']""")


@functools.lru_cache(maxsize=None)
def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def _tree(path: Path) -> ast.Module:
    return ast.parse(_text(path))


def _names(text: str) -> list[tuple[str, str]]:
    """(name, bound as) of each name an import statement lists."""
    text = (re.sub(r"#[^\n]*", "", text) if "#" in text else text).strip("()")
    out = []
    for part in text.split(","):
        words = part.split()
        if words:
            out.append((words[0], words[-1] if len(words) == 3 and words[1] == "as" else words[0]))
    return out


@functools.lru_cache(maxsize=None)
def scan(path: Path, package: Path) -> tuple[tuple[Path, tuple[tuple[str, str], ...]], ...]:
    """(the module or package imported, as a path without suffix; its names and what they are bound as) for each
    import of package code in the file at `path`."""
    out = []
    text = _STRINGS.sub("", _text(path))
    for dots, module, names in _FROM.findall(text):
        if dots:
            base = path.parents[len(dots) - 1]
        elif module == package.name or module.startswith(package.name + "."):
            base = package.parent
        else:
            continue
        out.append((base.joinpath(*module.split(".")) if module else base, tuple(_names(names))))
    for line in _IMPORT.findall(text):
        for name, _ in _names(line):
            if name == package.name or name.startswith(package.name + "."):
                out.append((package.parent.joinpath(*name.split(".")), ()))
    return tuple(out)


def _package_files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*.py") if "__pycache__" not in p.parts}


@functools.lru_cache(maxsize=None)
def _bindings(init: Path, package: Path) -> dict[str, tuple[Path, str]]:
    """What a package's `__init__` binds by importing: bound name -> (where from, the name there)."""
    return {alias: (target, name) for target, names in scan(init, package) for name, alias in names}


@functools.lru_cache(maxsize=None)
def _defined(init: Path) -> frozenset[str]:
    """The names a package's `__init__` defines itself at module level (in `if` and `try` blocks too)."""
    out, todo = set(), list(_tree(init).body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.If, ast.Try)):
            todo += [*node.body, *node.orelse, *getattr(node, "finalbody", []), *getattr(node, "handlers", [])]
        elif isinstance(node, ast.ExceptHandler):
            todo += node.body
    return frozenset(out)


@functools.lru_cache(maxsize=None)
def resolve(target: Path, names: tuple[str, ...], package: Path) -> frozenset[Path]:
    """The files that define what `from target import names` takes (`import target` for no names)."""
    if target.with_suffix(".py").is_file():
        return frozenset({target.with_suffix(".py")})
    init = target / "__init__.py"
    if not init.is_file():
        return frozenset()
    if not names or "*" in names:
        return frozenset(_package_files(target))
    out: set[Path] = set()
    bound = _bindings(init, package)
    defined = _defined(init)
    for name in names:
        if (target / f"{name}.py").is_file():
            out.add(target / f"{name}.py")
        elif (target / name / "__init__.py").is_file():
            out |= _package_files(target / name)
        elif name in bound:
            where, original = bound[name]
            out |= resolve(where, (original,), package)
        elif name in defined:
            out.add(init)
        else:  # bound only when the program runs (a module __getattr__): any file of the package
            out |= _package_files(target)
    return frozenset(out)


@functools.lru_cache(maxsize=None)
def plumbing(path: Path, package: Path) -> bool:
    rel = path.relative_to(package).as_posix()
    return any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in PLUMBING)


@functools.lru_cache(maxsize=None)
def _data_folders(package: Path) -> tuple[Path, ...]:
    """The package's folders of data files (no module in them): model configs."""
    return tuple(
        d for d in sorted(package.iterdir()) if d.is_dir() and d.name != "__pycache__" and not any(d.rglob("*.py"))
    )


def _data(path: Path, package: Path) -> set[Path]:
    """The files of each data folder the module at `path` names in a string."""
    text = _text(path)
    return {
        f
        for d in _data_folders(package)
        if f'"{d.name}"' in text or f"'{d.name}'" in text
        for f in d.rglob("*")
        if f.is_file()
    }


@functools.lru_cache(maxsize=None)
def _deps(path: Path, package: Path) -> frozenset[Path]:
    """The files the file at `path` imports or names directly."""
    if path.suffix != ".py":
        return frozenset()
    out = set(_data(path, package))
    for target, names in scan(path, package):
        out |= resolve(target, tuple(n for n, _ in names), package)
    return frozenset(out)


def closure(package: Path, roots: Iterable[Path], leave_out: Iterable[Path] = ()) -> set[Path]:
    """`roots` and every file of the package they import, directly or not (module doc); plumbing, and the files
    `leave_out` names (neither hashed nor followed), left out."""
    seen: set[Path] = set()
    todo, left = list(roots), set(leave_out)
    while todo:
        path = todo.pop()
        if path in seen or path in left or plumbing(path, package):
            continue
        seen.add(path)
        todo.extend(_deps(path, package))
    return seen


def _command_name(func: str, args: str) -> str:
    """The name click registers a command under: `name=`, a first argument, or the function's name its way."""
    given = _GIVEN.match(args)
    if given:
        return given.group(1)
    name = func.lower().replace("_", "-")
    left, sep, suffix = name.rpartition("-")
    return left if sep and suffix in _SUFFIXES else name


@functools.lru_cache(maxsize=None)
def commands(package: Path) -> dict[str, tuple[Path, str]]:
    """Every `dcsm-cache` command and group ('eval', 'analyze cka', ...) -> (its CLI module, its function's name),
    read from the decorators (`@main.command(name="eval")` above `def eval_`)."""
    found: dict[str, tuple[Path, str]] = {}
    for path in sorted((package / "cli").glob("*.py")):
        parent = {  # function -> (the group it is registered on, its own name); click.group makes the root
            func: (group, _command_name(func, args))
            for group, args, func in _DECORATED.findall(_text(path))
            if group != "click"
        }
        found.update({_full_name(parent, func): (path, func) for func in parent})
    return found


def _full_name(parent: dict[str, tuple[str, str]], func: str) -> str:
    """'analyze cka' for `cka` registered on group `analyze` (itself on `main`), 'eval' for `eval_` on `main`."""
    group, own = parent[func]
    return own if group not in parent else f"{_full_name(parent, group)} {own}"


@functools.lru_cache(maxsize=None)
def _module(path: Path) -> tuple[dict[str, str], dict[str, tuple[ast.ImportFrom | ast.Import, str]]]:
    """A CLI module's functions (name -> its source: from `def` to the next code at column 0), and the names its
    module-level imports bind (-> the import, the name taken). Only those lines are parsed, not the module."""
    text = _text(path)
    blank = _STRINGS.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)  # docstrings blanked, offsets kept
    ends = [m.start() for m in _TOP.finditer(blank)] + [len(text)]
    functions = {}
    for m in _DEF.finditer(blank):
        functions[m.group(1)] = text[m.start() : next(e for e in ends if e > m.start())]
    top = "\n".join(m.group(0) for r in (_FROM, _IMPORT) for m in r.finditer(blank) if blank[m.start()] in "fi")
    bound = {}
    for node in ast.parse(top).body:
        for a in node.names:
            bound[a.asname or a.name.split(".")[0]] = (node, a.name)
    return functions, bound


@functools.lru_cache(maxsize=None)
def _function(path: Path, name: str) -> ast.FunctionDef:
    return ast.parse(_module(path)[0][name]).body[0]


def _import_targets(path: Path, node: ast.ImportFrom | ast.Import, names, package: Path) -> set[Path]:
    if isinstance(node, ast.Import):
        mods = [n for n in names if n == package.name or n.startswith(package.name + ".")]
        return {f for m in mods for f in resolve(package.parent.joinpath(*m.split(".")), (), package)}
    if node.level:
        base = path.parents[node.level - 1]
    elif (node.module or "").split(".")[0] == package.name:
        base = package.parent
    else:
        return set()
    target = base.joinpath(*node.module.split(".")) if node.module else base
    return set(resolve(target, tuple(names), package))


def command_roots(package: Path, command: str) -> set[Path]:
    """The package files `dcsm-cache COMMAND` imports to do its work (module doc), its groups' (`analyze` for
    `analyze cka`) included."""
    table = commands(package)
    if command not in table:
        raise KeyError(command)
    words = command.split()
    groups = [" ".join(words[:n]) for n in range(1, len(words))]
    return set().union(*(_function_roots(package, *table[c]) for c in (*groups, command) if c in table))


def _function_roots(package: Path, path: Path, func: str) -> set[Path]:
    """What the CLI function `func` of module `path` imports, with the module's helpers it calls."""
    functions, bound = _module(path)
    roots: set[Path] = set()
    todo, done = [func], set()
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        for node in (n for stmt in _function(path, name).body for n in ast.walk(stmt)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                roots |= _import_targets(path, node, [a.name for a in node.names], package)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                if node.id in functions:  # a helper of the CLI module the command calls
                    todo.append(node.id)
                elif node.id in bound:  # a module-level import the command uses
                    imp, taken = bound[node.id]
                    roots |= _import_targets(path, imp, [taken], package)
    return roots


def cache_clear() -> None:
    """Forget every file read (for a test that edits the package under a running interpreter)."""
    caches = (_text, _tree, scan, _bindings, _defined, resolve, plumbing, _data_folders, _deps, commands, _module)
    for f in (*caches, _function):
        f.cache_clear()
