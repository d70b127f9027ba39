"""The Terraform configuration in ``terraform/`` read with python-hcl2 (7.x), plus the small
amount of evaluation the cross-checks need (references to ``local.*`` and ``var.*`` defaults).

python-hcl2 7 returns every block as a list of dicts and wraps every block attribute's value
in a one-element list (``{"sid": ["A"], "actions": [["s3:GetObject"]]}``); values inside an
object literal are not wrapped. Expressions come back as ``"${…}"`` strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcl2.api import loads as parse_hcl

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"
META_KEYS = frozenset({"__start_line__", "__end_line__"})
_REFERENCE = re.compile(r"^\$\{(local|var)\.([A-Za-z0-9_]+)\}$")
_INNER_REFERENCE = re.compile(r"\$\{(local|var)\.([A-Za-z0-9_]+)\}")


class HclShapeError(AssertionError):
    """The configuration does not have the shape the checks expect (a block or name moved)."""


def attr(body: dict[str, Any], name: str) -> Any:
    """A block attribute's value, unwrapped from python-hcl2's one-element list."""
    if name not in body:
        found = sorted(set(body) - META_KEYS)
        raise HclShapeError(f"expected attribute {name!r}, found only {found}")
    value = body[name]
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    raise HclShapeError(
        f"expected python-hcl2 to wrap {name!r} in a one-element list, found {value!r}")


def blocks(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The nested blocks called ``name`` (static ones, then the content of dynamic ones)."""
    found: list[dict[str, Any]] = list(body.get(name, []))
    for dynamic in body.get("dynamic", []):
        if name in dynamic:
            found.extend(dynamic[name].get("content", []))
    return found


def strip_meta(value: Any) -> Any:
    """``value`` without python-hcl2's line-number keys."""
    if isinstance(value, dict):
        return {k: strip_meta(v) for k, v in value.items() if k not in META_KEYS}
    if isinstance(value, list):
        return [strip_meta(v) for v in value]
    return value


@dataclass(repr=False)
class TerraformConfig:
    """Every ``*.tf`` file of a folder, merged by block type."""

    directory: Path
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw_text: dict[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"TerraformConfig({self.directory}, {len(self.raw_text)} files)"

    @classmethod
    def load(cls, directory: Path = TERRAFORM_DIR) -> TerraformConfig:
        """Parse every ``*.tf`` file of ``directory``."""
        config = cls(directory)
        files = sorted(directory.glob("*.tf"))
        if not files:
            raise HclShapeError(f"expected *.tf files in {directory}, found none")
        for path in files:
            text = path.read_text(encoding="utf-8")
            config.raw_text[path.name] = text
            parsed = parse_hcl(text)
            for kind, target in (("resource", config.resources), ("data", config.data)):
                for entry in parsed.get(kind, []):
                    for type_name, named in entry.items():
                        for name, body in named.items():
                            target.setdefault(type_name, {})[name] = body
            for entry in parsed.get("locals", []):
                for name, value in entry.items():
                    if name not in META_KEYS:
                        config.locals[name] = value[0] if isinstance(value, list) else value
            for entry in parsed.get("variable", []):
                config.variables.update(entry)
        return config

    def resource(self, type_name: str, name: str) -> dict[str, Any]:
        """One ``resource`` block's body."""
        try:
            return self.resources[type_name][name]
        except KeyError as err:
            raise HclShapeError(
                f"expected resource {type_name}.{name} in {self.directory}") from err

    def data_source(self, type_name: str, name: str) -> dict[str, Any]:
        """One ``data`` block's body."""
        try:
            return self.data[type_name][name]
        except KeyError as err:
            raise HclShapeError(f"expected data {type_name}.{name} in {self.directory}") from err

    def local(self, name: str) -> Any:
        """A local value as parsed (expressions stay ``${…}`` strings)."""
        if name not in self.locals:
            raise HclShapeError(f"expected local.{name} in {self.directory}")
        return strip_meta(self.locals[name])

    def variable_default(self, name: str) -> Any:
        """A variable's default value."""
        if name not in self.variables:
            raise HclShapeError(f"expected variable {name!r} in {self.directory}")
        if "default" not in self.variables[name]:
            raise HclShapeError(f"variable {name!r} has no default: pass it to resolve()")
        return attr(self.variables[name], "default")

    def resolve(self, value: Any, variables: Mapping[str, Any] | None = None) -> Any:
        """Replace ``${local.x}`` / ``${var.x}`` references (recursively, also inside strings)
        with their values; ``variables`` overrides the defaults. Other expressions stay."""
        given = dict(variables or {})

        def lookup(kind: str, name: str) -> Any:
            if kind == "var":
                return given[name] if name in given else self.variable_default(name)
            return self.local(name)

        if isinstance(value, str):
            match = _REFERENCE.match(value)
            if match is not None:
                return self.resolve(lookup(*match.groups()), given)

            def substitute(found: re.Match[str]) -> str:
                resolved = self.resolve(lookup(found.group(1), found.group(2)), given)
                return resolved if isinstance(resolved, str) else found.group(0)

            return _INNER_REFERENCE.sub(substitute, value)
        if isinstance(value, dict):
            return {k: self.resolve(v, given) for k, v in value.items() if k not in META_KEYS}
        if isinstance(value, list):
            return [self.resolve(v, given) for v in value]
        return value

    def policy_statements(self, document: str, key: str | None = None) -> Iterator[dict[str, Any]]:
        """Statements of ``data.aws_iam_policy_document.<document>``, with its source documents.

        ``key`` selects the instance of a ``for_each`` document referenced as
        ``…["key"].json`` by ``source_policy_documents``.
        """
        body = self.data_source("aws_iam_policy_document", document)
        for source in (attr(body, "source_policy_documents")
                       if "source_policy_documents" in body else []):
            match = re.fullmatch(
                r'\$\{data\.aws_iam_policy_document\.([a-z0-9_]+)(?:\["([a-z0-9_]+)"\])?\.json\}',
                source)
            if match is None:
                raise HclShapeError(f"expected a policy document reference, found {source!r}")
            yield from self.policy_statements(match.group(1), match.group(2) or key)
        yield from blocks(body, "statement")

    def all_policy_documents(self) -> dict[str, dict[str, Any]]:
        """Every ``aws_iam_policy_document`` data source by name."""
        return dict(self.data.get("aws_iam_policy_document", {}))


def _as_list(value: Any) -> list[str]:
    """A list attribute; an expression (``"${concat(…)}"``) counts as one opaque item."""
    return [value] if isinstance(value, str) else [str(v) for v in value]


def statement_actions(statement: dict[str, Any]) -> list[str]:
    """A statement's actions."""
    return _as_list(attr(statement, "actions")) if "actions" in statement else []


def statement_resources(statement: dict[str, Any]) -> list[str]:
    """A statement's resources (expressions stay as one ``${…}`` item)."""
    return _as_list(attr(statement, "resources")) if "resources" in statement else []


def statement_effect(statement: dict[str, Any]) -> str:
    """``Allow`` or ``Deny`` (Terraform's default is Allow)."""
    return str(attr(statement, "effect")) if "effect" in statement else "Allow"


def statement_sid(statement: dict[str, Any]) -> str:
    """The statement id, or ``""``."""
    return str(attr(statement, "sid")) if "sid" in statement else ""
