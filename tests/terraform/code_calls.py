"""What the code of a component calls on AWS, found by reading its source with ``ast``.

A component's files are its own folder plus every first-party module it imports, transitively
(imports under ``if TYPE_CHECKING:`` only describe types and are not followed). The services it
uses are the string arguments of ``….client("svc")`` / ``….resource("svc")`` calls and the
``mypy_boto3_<svc>`` stubs it imports. A call ``x.method(…)`` is an AWS call when ``method`` is
an operation of one of those services in botocore's service model (``method_to_api_mapping``),
or one of boto3's managed transfers (``copy``, ``upload_file``, …).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from tests.terraform.hcl import REPO_ROOT

FIRST_PARTY = {
    "dynamo_ingest": REPO_ROOT / "glue_jobs" / "dynamo_ingest",
    "trigger_lambda": REPO_ROOT / "trigger_lambda",
    "callback_lambda": REPO_ROOT / "callback_lambda",
    "loader_lambda": REPO_ROOT / "loader_lambda",
    "crawlers": REPO_ROOT / "crawlers",
    "local_aws": REPO_ROOT / "local_aws",
    "dynamo_ingest_cli": REPO_ROOT / "dynamo_ingest_cli",
}

# boto3 methods that are not operations of the service model but run several of them.
# s3 managed copy: HeadObject (s3:GetObject) on the source, then CopyObject or, above the
# multipart threshold, CreateMultipartUpload / UploadPartCopy / CompleteMultipartUpload (all
# s3:PutObject), AbortMultipartUpload on failure; a copy carries the source's tags along, which
# needs s3:GetObjectTagging on the source and s3:PutObjectTagging on the destination.
MANAGED_TRANSFERS: dict[tuple[str, str], frozenset[str]] = {
    ("s3", "copy"): frozenset({"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload",
                               "s3:GetObjectTagging", "s3:PutObjectTagging"}),
    ("s3", "upload_file"): frozenset({"s3:PutObject", "s3:AbortMultipartUpload"}),
    ("s3", "upload_fileobj"): frozenset({"s3:PutObject", "s3:AbortMultipartUpload"}),
    ("s3", "download_file"): frozenset({"s3:GetObject"}),
    ("s3", "download_fileobj"): frozenset({"s3:GetObject"}),
    ("dynamodb", "batch_writer"): frozenset({"dynamodb:BatchWriteItem"}),
}

# Operations whose IAM action is not "<service>:<OperationName>" (Service Authorization
# Reference, "Actions defined by Amazon S3"): HeadObject is authorized by s3:GetObject,
# listing by s3:ListBucket, the multipart steps by s3:PutObject; CopyObject reads the source
# and writes the destination, carrying tags (see MANAGED_TRANSFERS).
SPECIAL_ACTIONS: dict[tuple[str, str], frozenset[str]] = {
    ("s3", "HeadObject"): frozenset({"s3:GetObject"}),
    ("s3", "HeadBucket"): frozenset({"s3:ListBucket"}),
    ("s3", "ListObjects"): frozenset({"s3:ListBucket"}),
    ("s3", "ListObjectsV2"): frozenset({"s3:ListBucket"}),
    ("s3", "ListObjectVersions"): frozenset({"s3:ListBucketVersions"}),
    ("s3", "CopyObject"): frozenset({"s3:GetObject", "s3:PutObject",
                                     "s3:GetObjectTagging", "s3:PutObjectTagging"}),
    ("s3", "CreateMultipartUpload"): frozenset({"s3:PutObject"}),
    ("s3", "UploadPart"): frozenset({"s3:PutObject"}),
    ("s3", "UploadPartCopy"): frozenset({"s3:GetObject", "s3:PutObject"}),
    ("s3", "CompleteMultipartUpload"): frozenset({"s3:PutObject"}),
    ("s3", "ListParts"): frozenset({"s3:ListMultipartUploadParts"}),
    ("s3", "DeleteObjects"): frozenset({"s3:DeleteObject"}),
    # Lambda's Invoke API is authorized by lambda:InvokeFunction.
    ("lambda", "Invoke"): frozenset({"lambda:InvokeFunction"}),
    ("lambda", "InvokeAsync"): frozenset({"lambda:InvokeFunction"}),
    # TransactWriteItems is authorized per item action (PutItem, UpdateItem, …).
    ("dynamodb", "TransactWriteItems"): frozenset(),
}


@dataclass(frozen=True)
class AwsCall:
    """One call site: where it is, what it calls, and the IAM actions that authorize it."""

    path: Path
    line: int
    method: str
    receiver: str
    service: str
    operation: str
    actions: frozenset[str]
    function: str = ""  # "Class.method", "function" or "" for module level

    def where(self) -> str:
        """``path:line`` relative to the repository."""
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line}"


def iam_actions(service: str, operation: str) -> frozenset[str]:
    """The IAM actions that authorize ``service``'s ``operation``."""
    return SPECIAL_ACTIONS.get((service, operation), frozenset({f"{service}:{operation}"}))


@cache
def _client(service: str) -> Any:
    """A client that is only introspected, never called."""
    import botocore.session

    return botocore.session.get_session().create_client(
        service, region_name="us-east-1", aws_access_key_id="unused",
        aws_secret_access_key="unused")


@cache
def operations(service: str) -> dict[str, str]:
    """snake_case method → OperationName for one service, from botocore's service model."""
    return dict(_client(service).meta.method_to_api_mapping)


@cache
def known_services() -> frozenset[str]:
    """Every service botocore knows."""
    import botocore.session

    return frozenset(botocore.session.get_session().get_available_services())


def _module_path(module: str) -> Path | None:
    head, _, rest = module.partition(".")
    root = FIRST_PARTY.get(head)
    if root is None:
        return None
    base = root.joinpath(*rest.split(".")) if rest else root
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> Iterable[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _package_of(path: Path) -> str | None:
    for name, root in FIRST_PARTY.items():
        if path.is_relative_to(root):
            parts = path.relative_to(root).with_suffix("").parts
            return ".".join((name, *parts[:-1])) if parts else name
    return None


def imported_modules(path: Path, *, runtime_only: bool = True) -> set[str]:
    """Dotted names of the modules ``path`` imports (``from a import b``: ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes = _runtime_nodes(tree) if runtime_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package_of(path) or ""
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def first_party_closure(start: Iterable[Path]) -> set[Path]:
    """``start`` plus every first-party module file they import at run time, transitively."""
    seen: set[Path] = set()
    todo = [p.resolve() for p in start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imported_modules(path):
            parts = module.split(".")
            # "a.b.c" also imports the packages "a" and "a.b".
            for end in range(1, len(parts) + 1):
                target = _module_path(".".join(parts[:end]))
                if target is not None and target.resolve() not in seen:
                    todo.append(target.resolve())
    return seen


def third_party_imports(files: Iterable[Path]) -> dict[str, set[str]]:
    """Top-level names of run-time imports that are neither stdlib nor first-party → files."""
    found: dict[str, set[str]] = {}
    for path in files:
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top and top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                found.setdefault(top, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def services_used(files: Iterable[Path]) -> set[str]:
    """Services the files build clients for or type clients of."""
    services: set[str] = set()
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("client", "resource") and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and node.args[0].value in known_services()):
                services.add(str(node.args[0].value))
        for module in imported_modules(path, runtime_only=False):
            if module.startswith("mypy_boto3_"):
                services.add(module.removeprefix("mypy_boto3_").split(".")[0].replace("_", "-"))
    return services


def _pick_service(method: str, receiver: str, candidates: list[str]) -> list[str]:
    """Narrow a method several services share by the service named in the receiver."""
    named = [s for s in candidates if s.replace("-", "_") in receiver.lower()]
    return named or candidates


@cache
def waiters(service: str) -> dict[str, str]:
    """Waiter name → the operation it polls, for one service."""
    client = _client(service)
    return {name: client.get_waiter(name).config.operation for name in client.waiter_names}


def _constant_arg(node: ast.Call) -> str | None:
    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value
    return None


def _alternatives(node: ast.Call | ast.Attribute, path: Path,
                  services: set[str]) -> list[AwsCall]:
    """The AWS calls a call site (or a bound method passed on, ``self._client.put_item``)
    may be; empty when it is none."""
    attribute = node.func if isinstance(node, ast.Call) else node
    assert isinstance(attribute, ast.Attribute)
    method = attribute.attr
    receiver = ast.unparse(attribute.value)
    found: list[AwsCall] = []
    if method in ("get_paginator", "get_waiter"):
        argument = _constant_arg(node) if isinstance(node, ast.Call) else None
        if argument is None:
            return found
        for service in sorted(services):
            table = operations(service) if method == "get_paginator" else waiters(service)
            if argument in table:
                operation = table[argument]
                found.append(AwsCall(path, node.lineno, f"{method}({argument!r})", receiver,
                                     service, operation, iam_actions(service, operation)))
        return found
    candidates = [s for s in sorted(services)
                  if method in operations(s) or (s, method) in MANAGED_TRANSFERS]
    for service in _pick_service(method, receiver, candidates):
        if (service, method) in MANAGED_TRANSFERS:
            # dict.copy() and friends take no arguments; a managed copy takes three.
            arguments = len(node.args) + len(node.keywords) if isinstance(node, ast.Call) else 0
            if method == "copy" and arguments < 2:
                continue
            found.append(AwsCall(path, node.lineno, method, receiver, service, method,
                                 MANAGED_TRANSFERS[(service, method)]))
        else:
            operation = operations(service)[method]
            found.append(AwsCall(path, node.lineno, method, receiver, service, operation,
                                 iam_actions(service, operation)))
    return found


def _names_a_client(receiver: ast.expr, services: set[str]) -> bool:
    """``self._client``, ``dynamodb``, ``clients.s3``: an expression that names a client."""
    text = ast.unparse(receiver).lower()
    return "client" in text or any(
        re.search(rf"(^|[._]){re.escape(s.replace('-', '_'))}($|[._])", text) for s in services)


@dataclass(frozen=True)
class Function:
    """A module-level function or a method: its name and its body's syntax tree."""

    path: Path
    name: str
    owner: str  # the class name for a method, "" for a function
    node: ast.FunctionDef | ast.AsyncFunctionDef


# Method names of the built-in types: ``text.find(…)`` and ``ledger.find(…)`` look alike, so
# for these names a reference reaches our method only when the receiver's class is known.
BUILTIN_METHODS = frozenset(
    name for kind in (str, bytes, bytearray, dict, list, set, frozenset, tuple, int, float)
    for name in dir(kind) if not name.startswith("_"))
_FUNCTIONS = ast.FunctionDef | ast.AsyncFunctionDef


def _annotated_class(node: ast.expr | None) -> str | None:
    """``Ledger``, ``Ledger | None``, ``"Ledger"``, ``mod.Ledger`` → ``"Ledger"``."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return _annotated_class(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return None
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.BinOp):
        return _annotated_class(node.left) or _annotated_class(node.right)
    if isinstance(node, ast.Subscript):
        return _annotated_class(node.slice)
    return None


def _constructed_class(node: ast.expr | None) -> str | None:
    """``Ledger(…)`` or ``LedgerSession.open(…)`` → the class name."""
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name):
            return node.func.id
        if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            return node.func.value.id
    return None


def _local_types(function: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, str]:
    """Variable → class name, from parameter annotations and simple assignments."""
    types: dict[str, str] = {}
    arguments = function.args
    for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
        found = _annotated_class(arg.annotation)
        if found:
            types[arg.arg] = found
    for node in ast.walk(function):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found = _annotated_class(node.annotation)
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], ast.Name)):
            found = _constructed_class(node.value)
        else:
            continue
        target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
        if found and isinstance(target, ast.Name):
            types.setdefault(target.id, found)
    return types


def _attribute_types(cls: ast.ClassDef) -> dict[str, str]:
    """``self.x`` → class name, from field annotations and ``__init__`` assignments."""
    types: dict[str, str] = {}
    for member in cls.body:
        if isinstance(member, ast.AnnAssign) and isinstance(member.target, ast.Name):
            found = _annotated_class(member.annotation)
            if found:
                types[member.target.id] = found
        if isinstance(member, _FUNCTIONS) and member.name == "__init__":
            parameters = _local_types(member)
            for node in ast.walk(member):
                targets: list[ast.expr] = []
                value: ast.expr | None = None
                annotation: ast.expr | None = None
                if isinstance(node, ast.Assign):
                    targets, value = node.targets, node.value
                elif isinstance(node, ast.AnnAssign):
                    targets, value, annotation = [node.target], node.value, node.annotation
                for target in targets:
                    if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                            and target.value.id == "self"):
                        found = (_annotated_class(annotation) or _constructed_class(value)
                                 or (parameters.get(value.id) if isinstance(value, ast.Name)
                                     else None))
                        if found:
                            types.setdefault(target.attr, found)
    return types


@dataclass(frozen=True)
class _Reference:
    """A name some reached code mentions: plain, or a method of a known class."""

    name: str
    owner: str | None = None


def _references(node: ast.AST, owner: str, local_types: Mapping[str, str],
                attribute_types: Mapping[str, Mapping[str, str]],
                modules: set[str]) -> set[_Reference]:
    """What a piece of code refers to (outside TYPE_CHECKING blocks)."""
    found: set[_Reference] = set()
    for child in _runtime_nodes(node):
        if isinstance(child, ast.Name):
            found.add(_Reference(child.id))
        elif isinstance(child, ast.Attribute):
            receiver = child.value
            if isinstance(receiver, ast.Name) and receiver.id in modules:
                # socket.create_connection, os.path…: a module's function, not ours.
                continue
            if child.attr not in BUILTIN_METHODS:
                found.add(_Reference(child.attr))
                continue
            known: str | None = None
            if isinstance(receiver, ast.Name):
                known = owner if receiver.id in ("self", "cls") else local_types.get(receiver.id)
            elif (isinstance(receiver, ast.Attribute) and isinstance(receiver.value, ast.Name)
                  and receiver.value.id == "self"):
                known = attribute_types.get(owner, {}).get(receiver.attr)
            if known:
                found.add(_Reference(child.attr, known))
    return found


def _imported_module_names(tree: ast.Module) -> set[str]:
    """Names bound to modules by ``import x`` / ``import x.y`` / ``import x as y``."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
    return names


def reachable_functions(files: Iterable[Path], entry_points: set[str]) -> list[Function]:
    """Functions reachable by name from ``entry_points`` and from every module's top level.

    A function counts as reached as soon as reached code mentions its name (called, passed to
    ``mapPartitions``, used as a property): that over-approximates and never misses a call made
    through a renamed variable. Method names that built-in types share (``get``, ``find``,
    ``add``) count only when the receiver's class is known (``self``, an annotated parameter,
    a constructed variable, a typed attribute), so ``text.find`` does not reach
    ``Ledger.find``.
    """
    functions: list[Function] = []
    pending: set[_Reference] = {_Reference(name) for name in entry_points}
    scopes: dict[Function, set[_Reference]] = {}
    attribute_types: dict[str, dict[str, str]] = {}
    for path in sorted(files):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        modules = _imported_module_names(tree)
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
        for cls in classes:
            attribute_types.setdefault(cls.name, {}).update(_attribute_types(cls))
        for statement in tree.body:
            members: list[tuple[str, ast.stmt]] = (
                [(statement.name, m) for m in statement.body]
                if isinstance(statement, ast.ClassDef) else [("", statement)])
            for owner, member in members:
                if isinstance(member, _FUNCTIONS):
                    function = Function(path, member.name, owner, member)
                    functions.append(function)
                    scopes[function] = _references(member, owner, _local_types(member),
                                                   attribute_types, modules)
                    for decorator in member.decorator_list:
                        pending |= _references(decorator, owner, {}, attribute_types, modules)
                elif isinstance(member, ast.ClassDef):
                    continue
                else:
                    pending |= _references(member, owner, {}, attribute_types, modules)
            if isinstance(statement, ast.ClassDef):
                for base in statement.bases:
                    pending |= _references(base, "", {}, attribute_types, modules)
    reached: set[Function] = set()
    seen: set[_Reference] = set()
    while pending:
        reference = pending.pop()
        if reference in seen:
            continue
        seen.add(reference)
        for function in functions:
            if function in reached:
                continue
            if reference.owner is not None:
                hit = function.owner == reference.owner and function.name == reference.name
            else:
                hit = function.name == reference.name and (
                    not function.owner or function.name not in BUILTIN_METHODS)
                # Naming a class runs its constructor and lets Python call its other dunders.
                hit = hit or (function.owner == reference.name and function.name.startswith("__"))
            if hit:
                reached.add(function)
                pending |= scopes[function] - seen
    return sorted(reached, key=lambda f: (str(f.path), f.owner, f.name))


def aws_calls(files: Iterable[Path], services: set[str],
              entry_points: set[str] | None = None) -> list[list[AwsCall]]:
    """Every AWS call site (in reachable code when ``entry_points`` is given); each entry
    lists the alternatives when a method name belongs to several services."""
    files = sorted(files)
    scopes: list[tuple[Path, str, ast.AST]] = []
    if entry_points is None:
        scopes = [(p, "", ast.parse(p.read_text(encoding="utf-8"), filename=str(p)))
                  for p in files]
    else:
        for path in files:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            definitions = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            top_level = [s for s in tree.body if not isinstance(s, definitions)]
            scopes += [(path, "", s) for s in top_level]
        scopes += [(f.path, f"{f.owner}.{f.name}" if f.owner else f.name, f.node)
                   for f in reachable_functions(files, entry_points)]
    modules = {p: _imported_module_names(ast.parse(p.read_text(encoding="utf-8")))
               for p in files}
    sites: list[list[AwsCall]] = []
    for path, function, scope in scopes:
        nodes = list(_runtime_nodes(scope))
        called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
        for node in nodes:
            site: ast.Call | ast.Attribute
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                site, receiver = node, node.func.value
            elif (isinstance(node, ast.Attribute) and id(node) not in called
                  and isinstance(node.ctx, ast.Load) and _names_a_client(node.value, services)):
                site, receiver = node, node.value  # a bound method handed to a retry helper
            else:
                continue
            root = receiver
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in modules[path] and (
                    root is receiver or not _names_a_client(receiver, services)):
                # socket.create_connection(…) is not glue:CreateConnection, nor is
                # botocore.session.get_session() glue:GetSession.
                continue
            alternatives = [replace(call, function=function)
                            for call in _alternatives(site, path, services)]
            if alternatives:
                sites.append(alternatives)
    return sites
