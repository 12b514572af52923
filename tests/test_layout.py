"""The layout's rules, read from the source (docs/ARCHITECTURE.md, "The stack"): no lower layer imports a
higher one, no import cycle, the numpy-only metrics (and the modules launchers check their input with) start no
TensorFlow, every function-local import says why it is local, and a module over 400 lines says why at its top.
Pure AST plus one subprocess: no TensorFlow is imported here.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tfstylegan", "classifier", "launchers")

# The stack, bottom to top (docs/ARCHITECTURE.md). A module may import its own layer's modules and any lower
# layer's; layers of the same rank stand side by side and must not import each other.
LAYERS = {
    "utils": 0,
    "ops": 1, "data": 1, "metrics": 1,
    "config": 2,
    "networks": 3,
    "augment": 4, "losses": 4,
    "training": 5,
    "export": 6, "classifier": 6,
    "apps": 7,
    "launchers": 8,
}

PENDING_REASONS: dict[str, int] = {}  # file -> unannotated local imports tolerated while a change is under way
PENDING_LONG: set[str] = set()  # modules over 400 lines whose reason is still to be written

MAX_LINES = 400
REASON = re.compile(r"#\s*here\b\W*\w.{8,}")  # '# here: <why>' / '# here, not at the top: <why>'


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path


def _module_name(rel):
    parts = rel.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(rel, tree):
    """(line, imported module, inside a function) for every import, relative ones resolved."""
    local = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local.update(id(node) for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom)))
    package = _module_name(rel).split(".")
    if not rel.endswith("__init__.py"):
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            # `from pkg import name` runs pkg (its __init__), and imports pkg.name too when that is a submodule
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            yield node.lineno, target, id(node) in local


def _layer(module):
    parts = module.split(".")
    if parts[0] == "tfstylegan":
        return parts[1] if len(parts) > 1 else None
    return parts[0] if parts[0] in PACKAGES else None


@pytest.fixture(scope="module")
def sources():
    return {rel: path.read_text() for rel, path in _modules()}


@pytest.fixture(scope="module")
def trees(sources):
    return {rel: ast.parse(text) for rel, text in sources.items()}


def test_layer_table_names_every_package(trees):
    layers = {_layer(_module_name(rel)) for rel in trees} - {None}
    assert layers <= set(LAYERS), f"place {sorted(layers - set(LAYERS))} in LAYERS and in docs/ARCHITECTURE.md"


def test_no_lower_layer_imports_a_higher_one(trees):
    wrong = []
    for rel, tree in trees.items():
        own = _layer(_module_name(rel))
        for line, target, in_function in _imports(rel, tree):
            other = _layer(target)
            if own is None or other is None or other == own:
                continue
            if LAYERS[other] >= LAYERS[own]:
                where = "in a function" if in_function else "at module level"
                wrong.append(f"{rel}:{line}: {own} (layer {LAYERS[own]}) imports {target} "
                             f"(layer {LAYERS[other]}) {where}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_between_modules(trees):
    """Function-local imports included: a cycle hidden inside a function is still a cycle."""
    names = {_module_name(rel): rel for rel in trees}
    graph = {}
    for rel, tree in trees.items():
        edges = set()
        for _, target, _ in _imports(rel, tree):
            # a name that is no module (`pkg.mod.function`) is a dependency on the module that holds it
            while target and target not in names:
                target = target.rpartition(".")[0]
            if target and target != _module_name(rel):
                edges.add(target)
        graph[_module_name(rel)] = edges
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "\n".join(cycles)


# Modules that must start no TensorFlow when imported: the numpy-only metrics, and the first steps of the
# launchers that check their input before TensorFlow loads (the '# here' reasons below rely on these).
NO_TENSORFLOW = ("tfstylegan.metrics", "tfstylegan.data.prepare", "tfstylegan.apps.generation.seeds",
                 "tfstylegan.apps.synthetic_dataset.settings")


def test_light_modules_start_no_tensorflow():
    code = (f"import sys\nfor m in {NO_TENSORFLOW!r}:\n    __import__(m)\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'classifier') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_split_packages_export_what_their_submodules_define(trees):
    """The lazy re-exports of a split package (tfstylegan.utils.lazy) name only what their submodules define."""
    wrong = []
    for rel, tree in trees.items():
        call = next((node for node in ast.walk(tree) if isinstance(node, ast.Call)
                     and getattr(node.func, "id", None) == "lazy_exports"), None)
        if call is None:
            continue
        table = ast.literal_eval(call.args[1])
        for module, names in table.items():
            sub = ROOT / Path(rel).parent / f"{module}.py"
            defined = set()
            for node in ast.parse(sub.read_text()).body if sub.is_file() else []:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    defined.add(node.name)
                elif isinstance(node, ast.Assign):
                    defined.update(t.id for t in node.targets if isinstance(t, ast.Name))
                elif isinstance(node, ast.ImportFrom):
                    defined.update(a.asname or a.name for a in node.names)
            wrong += [f"{rel}: {module}.{name}" for name in names if name not in defined]
    assert not wrong, "\n".join(wrong)


def _import_runs(tree):
    """Runs of consecutive import statements inside functions, as lists of statements."""
    runs = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            for field in ("body", "orelse", "finalbody"):
                run = []
                body = getattr(node, field, None)
                for stmt in body if isinstance(body, list) else []:
                    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                        run.append(stmt)
                        continue
                    if run:
                        runs.append(run)
                    run = []
                if run:
                    runs.append(run)
    return runs


def _says_why(lines, lineno):
    """A reason on line `lineno` (1-based) or in the comment lines right above it."""
    if REASON.search(lines[lineno - 1]):
        return True
    above = lineno - 2
    while above >= 0 and lines[above].strip().startswith("#"):
        if REASON.search(lines[above]):
            return True
        above -= 1
    return False


def test_function_local_imports_say_why(sources, trees):
    """One reason may cover a run of imports (the comment above the first); nested functions count once."""
    wrong = []
    for rel, text in sources.items():
        lines = text.splitlines()
        mine = {}
        for run in _import_runs(trees[rel]):
            covered = _says_why(lines, run[0].lineno)
            for stmt in run:
                if not (covered or _says_why(lines, stmt.lineno)):
                    module = stmt.module if isinstance(stmt, ast.ImportFrom) else stmt.names[0].name
                    mine[stmt.lineno] = f"{rel}:{stmt.lineno}: {module}"
        if len(mine) > PENDING_REASONS.get(rel, 0):
            wrong += mine.values()
    assert not wrong, ("hoist these to module level, or say why they are local ('# here: <reason>' on the line "
                       "or just above):\n" + "\n".join(sorted(set(wrong))))


def test_long_modules_say_why(sources, trees):
    wrong = []
    for rel, text in sources.items():
        if text.count("\n") <= MAX_LINES or rel in PENDING_LONG:
            continue
        doc = ast.get_docstring(trees[rel], clean=False) or ""
        if not any(line.strip().startswith("(Over 400 lines") for line in doc.splitlines()):
            wrong.append(f"{rel}: {text.count(chr(10))} lines")
    assert not wrong, "split these, or say why at the top of the docstring ('(Over 400 lines ...'):\n" + \
        "\n".join(wrong)
