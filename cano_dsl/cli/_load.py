"""Finding the workflow a ``MODULE:ATTR`` target names, and its states by name."""

from __future__ import annotations

import enum
import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ..workflow import Workflow

__all__ = ["CliError", "load_workflow", "resolve_state", "state_enum"]


class CliError(Exception):
    """A command-line failure: the message is printed, ``code`` is the exit status
    (2 for bad input, 1 for a workflow that failed)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    name = path.stem
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise CliError(f"importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


def _import(module: str) -> ModuleType:
    if module.endswith(".py") or os.sep in module or "/" in module:
        return _import_file(Path(module))
    # `python -m` puts the working directory on sys.path; a console script does not
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            raise CliError(
                f"cannot import module {module!r}: {exc} (is it on PYTHONPATH, or in the "
                "working directory?)"
            ) from exc
        raise CliError(f"importing {module!r} failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise CliError(f"importing {module!r} failed: {type(exc).__name__}: {exc}") from exc


def _workflow_names(module: ModuleType) -> list[str]:
    return sorted(k for k, v in vars(module).items() if isinstance(v, Workflow))


def _returns_workflow(fn: Any) -> bool:
    annotation = getattr(fn, "__annotations__", {}).get("return")
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return isinstance(text, str) and text.split("[", 1)[0].strip("'\" ") == "Workflow"


def _factories(module: ModuleType) -> list[tuple[str, Any]]:
    """Functions defined in ``module`` annotated to return a Workflow."""
    return sorted(
        (k, v)
        for k, v in vars(module).items()
        if inspect.isfunction(v) and v.__module__ == module.__name__ and _returns_workflow(v)
    )


def _shown(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "?")


def _required_parameters(fn: Any) -> list[str] | None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [
        p.name if p.annotation is inspect.Parameter.empty else f"{p.name}: {_shown(p.annotation)}"
        for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def _expose_hint(module_name: str, attr: str, params: list[str]) -> str:
    short = Path(module_name).name if module_name.endswith(".py") else module_name
    names = ", ".join(p.split(":")[0] + "=..." for p in params)
    return (
        f"{module_name}:{attr} takes arguments ({', '.join(params)}) and the CLI calls a "
        f"factory with none; expose one in {short}, for example `def cli_workflow(): "
        f"return {attr}({names})`, and pass {module_name}:cli_workflow"
    )


def _pick(module: ModuleType, module_name: str) -> str:
    """The one workflow (or zero-argument factory) of a module named without ``:ATTR``."""
    names = _workflow_names(module)
    if len(names) == 1:
        return names[0]
    factories = _factories(module)
    callable_now = [k for k, f in factories if _required_parameters(f) == []]
    if not names and len(callable_now) == 1:
        return callable_now[0]
    if names or callable_now:
        found = ", ".join(f"{module_name}:{n}" for n in [*names, *callable_now])
        raise CliError(f"{module_name} holds several workflows: name one ({found})")
    if factories:
        name, fn = factories[0]
        raise CliError(
            f"{module_name} has no module-level workflow; "
            + _expose_hint(module_name, name, _required_parameters(fn) or [])
        )
    raise CliError(
        f"{module_name} has no module-level Workflow and no function returning one; "
        "build one at module level (or in a function with no arguments) for the CLI to run"
    )


def load_workflow(target: str) -> Workflow[Any]:
    """The `Workflow` named by ``MODULE:ATTR`` (``ATTR`` may be dotted, and may name a
    zero-argument callable returning the workflow). ``MODULE`` may also be a path to
    a ``.py`` file, alone when the file holds exactly one workflow."""
    module_name, sep, attr = target.rpartition(":")
    if not sep and target.endswith(".py"):
        module_name, attr = target, ""
    elif not sep or not module_name or not attr:
        raise CliError(f"expected MODULE:ATTR (for example `myflows:checkout`), got {target!r}")
    module = _import(module_name)
    if not attr:
        attr = _pick(module, module_name)
        target = f"{module_name}:{attr}"
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            known = _workflow_names(module)
            hint = f"; workflows there: {', '.join(known)}" if known else ""
            raise CliError(f"module {module_name!r} has no attribute {attr!r}{hint}") from None
    if isinstance(obj, Workflow):
        return obj
    if isinstance(obj, type) or not callable(obj):
        raise CliError(
            f"{target} is not a Workflow or a function returning one (got {type(obj).__name__})"
        )
    params = _required_parameters(obj)
    if params:
        raise CliError(_expose_hint(module_name, attr, params))
    try:
        made = obj()
    except TypeError as exc:
        raise CliError(f"{target} could not be called with no arguments: {exc}") from exc
    except Exception as exc:
        raise CliError(f"{target}() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(made, Workflow):
        raise CliError(f"{target}() did not return a Workflow (got {type(made).__name__})")
    return made


def state_enum(wf: Workflow[Any]) -> type[enum.Enum]:
    """The workflow's state Enum."""
    found = getattr(wf, "_state_type", None)
    if isinstance(found, type) and issubclass(found, enum.Enum):
        return found
    for state in [*wf.registered_states(), *wf.exit_states]:
        return type(state)
    raise CliError("the workflow has no states: register a task and an exit state")


def resolve_state(wf: Workflow[Any], name: str) -> enum.Enum:
    """The member of the workflow's Enum called ``name`` (exact, else the one
    case-insensitive match)."""
    states = state_enum(wf)
    members = states.__members__
    if name in members:
        return members[name]
    folded = [m for k, m in members.items() if k.lower() == name.lower()]
    if len(folded) == 1:
        return folded[0]
    raise CliError(f"unknown state {name!r} for {states.__name__}; states: {', '.join(members)}")
