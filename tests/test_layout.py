"""The package's folders are the pipeline's stages (docs/layout.md), and an import only ever goes
from a later stage to an earlier one: measuring never asks the judge, judging never asks the
record.  Read from the source itself (every import statement, lazy ones inside functions too;
type-only imports under ``if TYPE_CHECKING:`` aside), so a new import that breaks the order fails
here with the line that made it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "whisper_perf"

# What each module may import besides its own stage and earlier ones.  The shared helpers come first:
# they import no stage at all.
STAGES = ["<shared>", "inputs", "build", "measure", "judge", "record", "<run>", "commands", "<door>"]
SHARED = {"errors", "exiting", "files", "requirements", "environments", "package_index", "__init__"}
RUN = {"config", "session", "plugin"}  # the pytest run: its options, its state and its hooks
DOOR = {"cli", "__main__"}


def stage_of(module: str) -> int:
    """The stage of a dotted module below whisper_perf ("measure.timing", "errors")."""
    head = module.split(".")[0]
    if head in STAGES:
        return STAGES.index(head)
    if head in SHARED:
        return STAGES.index("<shared>")
    if head in RUN:
        return STAGES.index("<run>")
    if head in DOOR:
        return STAGES.index("<door>")
    raise AssertionError(f"whisper_perf.{module}: a module outside every stage; give it a folder (docs/layout.md)")


def _module_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def _type_only(tree: ast.AST) -> set[int]:
    """Line numbers inside ``if TYPE_CHECKING:`` blocks."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for inner in node.body:
                lines.update(range(inner.lineno, inner.end_lineno + 1))
    return lines


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module below whisper_perf) of every import of the package in ``path``."""
    module = _module_of(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    tree = ast.parse(path.read_text())
    skip, found = _type_only(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.lineno not in skip:
            if node.level:
                base = package[:len(package) - node.level + 1]
            elif (node.module or "").startswith("whisper_perf"):
                base, node.module = [], node.module.removeprefix("whisper_perf").lstrip(".")
            else:
                continue
            target = base + (node.module.split(".") if node.module else [])
            names = [alias.name for alias in node.names]
            # "from . import sequential", "from ..measure import accuracy": the names are modules
            if all(PACKAGE.joinpath(*target, f"{n}.py").exists() for n in names):
                found += [(node.lineno, ".".join(target + [n])) for n in names]
            elif target:
                found.append((node.lineno, ".".join(target)))
    return found


def test_no_module_imports_from_a_later_stage():
    backwards = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_of(path)
        for line, target in imports_of(path):
            if stage_of(target) > stage_of(module):
                backwards.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} "
                                 f"({STAGES[stage_of(module)]}) imports {target} ({STAGES[stage_of(target)]})")
    assert not backwards, "imports from a later stage:\n" + "\n".join(backwards)


def test_the_rule_sees_lazy_imports_and_ignores_type_only_ones(tmp_path):
    """The checker on the code it judges: a function-level import counts, a TYPE_CHECKING one does not."""
    timing = PACKAGE / "measure" / "timing.py"
    assert ("build.variants" in [t for _, t in imports_of(timing)]) and stage_of("build.variants") < stage_of(
        "measure.timing")
    summary = imports_of(PACKAGE / "judge" / "summary.py")
    assert "measure.accuracy" in [t for _, t in summary] and "measure.timing" not in [t for _, t in summary]
    assert "judge.sequential" in [t for _, t in summary]  # "from . import sequential"
    kernel_profile = [t for _, t in imports_of(PACKAGE / "measure" / "kernel_profile.py")]
    assert "build.variants" in kernel_profile  # imported inside profile_call
    stages = {path.parent.name for path in PACKAGE.rglob("*.py") if path.parent != PACKAGE} - {"data"}
    assert stages == {"inputs", "build", "measure", "judge", "record", "commands"}
