"""conf/: every default is written once, in its schema.

The dataclasses registered in marl/config.py (and `TrainConfig`) hold the defaults; a
yaml keeps only the values that differ from them. A restated default hides which values
of a file matter, and goes stale when the schema's default changes.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import MISSING as NO_DEFAULT
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from hydra.utils import get_class
from omegaconf import MISSING, DictConfig, OmegaConf

from marl.config import SCHEMAS, compose_config

CONF = Path(__file__).resolve().parents[1] / "conf"


@dataclass
class ConfFile:
    """One yaml under conf/: the option that selects it and where its values land."""

    path: Path
    group: str
    """Its config group ("env", "algo/agent"); "" for the primary config.yaml."""
    package: str
    """Where its values land: "" (the root), "env", "algo.modules.mac.agent", ..."""
    values: dict[str, Any]
    """What the file writes, interpolations unresolved, without its defaults list."""
    names: set[str]
    """Groups its defaults list names: composed with one of those selected, the file
    might not apply as written."""

    @property
    def override(self) -> list[str]:
        return [f"{self.group}={self.path.stem}"] if self.group else []


def conf_files() -> list[ConfFile]:
    """Every yaml under conf/ but conf/hydra/ (Hydra's own settings, not marl's schemas)."""
    out = []
    for path in sorted(CONF.rglob("*.yaml")):
        group = path.parent.relative_to(CONF).as_posix().removeprefix(".")
        if group.split("/")[0] == "hydra":
            continue
        values: Any = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        assert isinstance(values, dict), path
        values.pop("defaults", None)
        out.append(ConfFile(path, group, package(path, group), values, names(path, group)))
    return out


def names(path: Path, group: str) -> set[str]:
    """The groups the defaults list of ``path`` names, with those of the files of its own
    group it builds on (mappo on maa2c: maa2c's `override /learner` applies to mappo)."""
    values: Any = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    out = set()
    for entry in values.get("defaults", []):
        if isinstance(entry, dict):
            out |= {key.removeprefix("override ").lstrip("/").split("@")[0] for key in entry}
        elif path.with_name(f"{entry}.yaml").is_file():  # not _self_ or a stored schema
            out |= names(path.with_name(f"{entry}.yaml"), group)
    return out


def package(path: Path, group: str) -> str:
    """The `# @package` header of the file, Hydra's default `_group_` without one."""
    header = "_group_"
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        if found := re.match(r"#\s*@package\s+(\S+)", line):
            header = found.group(1)
    header = header.replace("_group_", group.replace("/", "."))
    return header.removeprefix("_global_").lstrip(".")


def related(a: str, b: str) -> bool:
    """The same group, or one nested in the other (algo, algo/agent)."""
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def clash(a: ConfFile, b: ConfFile) -> bool:
    """a and b cannot be checked in one composition."""
    if not (a.group and b.group):
        return False  # config.yaml is part of every composition
    return any(related(x, y) for x in {a.group, *a.names} for y in {b.group, *b.names})


def compositions(files: list[ConfFile]) -> list[list[ConfFile]]:
    """The files packed into few compositions (each takes ~0.2 s): one option per group."""
    packed: list[list[ConfFile]] = []
    for file in files:
        fits = next((batch for batch in packed if not any(clash(file, o) for o in batch)), None)
        if fits is None:
            packed.append([file])
        else:
            fits.append(file)
    return packed


def written(values: dict[str, Any], path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of each leaf a file writes (a list or `{}` is one leaf)."""
    for key, value in values.items():
        if isinstance(value, dict) and value:
            yield from written(value, f"{path}{key}.")
        else:
            yield f"{path}{key}", value


def schema_default(cfg: DictConfig, key: str) -> tuple[type, Any] | None:
    """The schema and default of the field `key` sets, None if the node has no schema
    (an `Any` or dict node) or the field no default."""
    parent, _, name = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    assert isinstance(node, DictConfig), f"{key} is not in the composed config"
    schema = OmegaConf.get_type(node)
    if not (isinstance(schema, type) and is_dataclass(schema)):
        return None
    field = next(f for f in fields(schema) if f.name == name)
    if field.default is not NO_DEFAULT:
        return schema, field.default
    if field.default_factory is not NO_DEFAULT:
        return schema, field.default_factory()
    return None


def test_no_yaml_restates_a_schema_default() -> None:
    """Each value a yaml writes is looked up in the config composed with that yaml selected:
    the node's schema (`OmegaConf.get_type`) names the field and its default."""
    restated = []
    for batch in compositions(conf_files()):
        cfg = compose_config([arg for file in batch for arg in file.override])
        for file in batch:
            for path, value in written(file.values):
                if isinstance(value, str) and "${" in value:
                    continue  # an interpolation is never a plain default
                if file.package == "" and path.startswith("hydra."):
                    continue  # Hydra's settings
                found = schema_default(cfg, f"{file.package}.{path}".lstrip("."))
                if found is not None and found[1] == value:
                    where = file.path.relative_to(CONF.parent)
                    restated.append(f"{where}: {path}: {value!r} ({found[0].__name__})")
    assert not restated, "restated schema defaults (delete them):\n" + "\n".join(restated)


def test_each_class_takes_its_defaults_from_its_schema() -> None:
    """The class a schema builds has a parameter for each field, whose default is the
    field's (none for a `???` field). A `default_factory` field's parameter has none, None
    for an empty factory value, or the same items (a tuple for a list)."""
    wrong = []
    for group, options in SCHEMAS.items():
        for option, schema in options.items():
            target = next((f.default for f in fields(schema) if f.name == "_target_"), None)
            if target is None:
                continue  # algo/base composes modules; it builds no class itself
            params = inspect.signature(get_class(target)).parameters
            for field in fields(schema):
                if field.name.startswith("_"):
                    continue
                if field.name not in params:
                    wrong.append(f"{group}/{option}: {target} has no {field.name}")
                    continue
                got = params[field.name].default
                if field.default_factory is not NO_DEFAULT:
                    want = field.default_factory()
                    ok = got is inspect.Parameter.empty or (got is None and not want)
                    ok = ok or (got is not None and type(want)(got) == want)
                else:
                    want = inspect.Parameter.empty
                    if field.default not in (NO_DEFAULT, MISSING):
                        want = field.default
                    ok = got == want and type(got) is type(want)
                if not ok:
                    wrong.append(f"{group}/{option}: {field.name}: {got!r} != {want!r}")
    assert not wrong, "class defaults that differ from their schema's:\n" + "\n".join(wrong)
