"""The layering of docs/design.md as a test: import-linter checks the contracts of pyproject.toml's
[tool.importlinter] section (every import statement, those inside function bodies included)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli, which import-linter itself needs there
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def _lint(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run lint-imports in ``cwd`` (its pyproject.toml) with no cache written there."""
    try:
        import importlinter  # noqa: F401
    except ImportError:
        pytest.fail(
            "import-linter is not installed: it is a development pin of dev/requirements.txt "
            "(bash dev/setup_env.sh installs it)"
        )
    return subprocess.run(
        [sys.executable, "-c", LINT, "--no-cache", "--no-logo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_layering_contracts_are_kept():
    result = _lint(REPO)
    assert result.returncode == 0, (
        "an import crosses the layering of docs/design.md (contracts in pyproject.toml, "
        f"[tool.importlinter]):\n{result.stdout}\n{result.stderr}"
    )
    assert "Contracts: 2 kept, 0 broken." in result.stdout, result.stdout


def test_a_function_level_crossing_breaks_a_contract(tmp_path):
    """import-linter reads imports inside function bodies, as the contracts rely on."""
    pkg = tmp_path / "layering_probe"
    for sub in ("low", "high"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "helpers.py").write_text(
        textwrap.dedent(
            """
            def late():
                from layering_probe.high import thing  # a crossing hidden in a function body
                return thing
            """
        )
    )
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.importlinter]
            root_package = "layering_probe"

            [[tool.importlinter.contracts]]
            name = "probe floors"
            type = "layers"
            containers = ["layering_probe"]
            layers = ["high", "low"]
            """
        )
    )
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "layering_probe.low.helpers -> layering_probe.high" in result.stdout, result.stdout


def test_evaluation_contract_names_every_data_module_but_the_catalog():
    """The contract "evaluation reads only data's catalogs" lists the other data modules one by
    one; a module added to rotated_det/data must join the list (or be a catalog)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["id"] == "evaluation-inputs"]
    listed = {m for m in contract["forbidden_modules"] if m.startswith("rotated_det.data.")}
    data = REPO / "rotated_det" / "data"
    present = {
        f"rotated_det.data.{p.stem}"
        for p in data.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    assert listed == present - {"rotated_det.data.catalog"}
