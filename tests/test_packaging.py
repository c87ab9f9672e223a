"""The package's set-up files agree with each other and the CLI answers."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONDA_NAMES = {"torch": "pytorch", "dlib-bin": "dlib"}  # PyPI name -> conda-forge name where they differ


def split_requirement(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower(), m.group(2).replace(" ", "")


def conda_dependencies() -> dict:
    deps = {}
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:", 1)[1].splitlines():
        m = re.match(r"^  - ([A-Za-z0-9_.\-]+)(.*)$", line)  # top-level conda entries only
        if m and not line.strip().startswith("- pip:"):
            deps[m.group(1).lower()] = m.group(2).replace(" ", "")
    return deps


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        required += extra
    conda = conda_dependencies()
    for req in required:
        name, spec = split_requirement(req)
        cname = CONDA_NAMES.get(name, name)
        assert cname in conda, f"{name} is in pyproject.toml but not in environment.yml"
        assert conda[cname] == spec, f"{name}: pyproject says {spec!r}, environment.yml says {conda[cname]!r}"
    pypi = {CONDA_NAMES.get(split_requirement(r)[0], split_requirement(r)[0]) for r in required}
    extra_in_conda = set(conda) - pypi - {"python", "pip"}
    assert not extra_in_conda, f"environment.yml has dependencies pyproject.toml lacks: {extra_in_conda}"


def test_torch_is_not_pinned_so_colab_keeps_its_own():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    torch = [r for r in project["dependencies"] if split_requirement(r)[0] == "torch"]
    assert torch and "==" not in torch[0] and "<" not in torch[0]


def test_cli_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "vrnkit", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ["demo", "voxelise"]:
        assert command in out


def test_readme_has_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
