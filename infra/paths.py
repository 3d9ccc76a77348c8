"""Where the CDK app finds what it deploys. Tests may point a stack at another tree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SourcePaths:
    """The inputs of the deployed code: handlers, specs, the layer and the buildspec."""

    root: Path = REPO_ROOT

    @property
    def functions(self) -> Path:
        return self.root / "functions"

    @property
    def specs(self) -> Path:
        return self.root / "specs"

    @property
    def layer(self) -> Path:
        return self.root / "layers" / "runtime"

    @property
    def requirements(self) -> Path:
        return self.layer / "requirements.txt"

    @property
    def package(self) -> Path:
        return self.layer / "statewright"

    @property
    def plan_module(self) -> Path:
        """The plan summary, shipped to the Terraform builds as it is (stdlib only)."""
        return self.package / "executors" / "terraform_plan.py"

    @property
    def layer_cache(self) -> Path:
        return self.layer / "build"

    @property
    def buildspec(self) -> Path:
        return self.root / "infra" / "buildspec" / "terraform.yml"

    def handler_dir(self, name: str) -> Path:
        return self.functions / name


class MissingSourceError(Exception):
    """A file the stack deploys is not in the tree."""


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise MissingSourceError(
            f"{what} not found at {path}; the stack cannot be built without it"
        )
    return path
