"""The job arguments as options of ``dynamo-ingest run`` and ``estimate``, built from the
registry in ``dynamo_ingest.core.arguments``: a new argument needs no CLI code, and its help, its
accepted values and its default are the ones Glue's parser checks.

Typer reads a command's options from its function's signature, so :func:`job_options` gives
the function a signature with one keyword parameter per argument the command exposes; the
values arrive in the function's ``**job_values`` and :func:`glue_values` turns them into the
strings Glue would pass, for :func:`dynamo_ingest.core.arguments.job_arguments_from_mapping`.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

import typer
from dynamo_ingest.core.arguments import (
    FALSE_WORDS,
    TRUE_WORDS,
    ArgumentSpec,
    Command,
    Flag,
    glue_text,
    job_argument_specs,
)
from dynamo_ingest.core.errors import ArgumentError
from typer.core import TyperCommand, TyperOption

try:  # recent Typer parses with its own copy of click
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - older Typer uses click itself
    from click.exceptions import UsageError  # type: ignore[assignment]

F = TypeVar("F", bound=Callable[..., Any])


def _parameter(spec: ArgumentSpec) -> inspect.Parameter:
    """The keyword parameter Typer turns into the option of one argument."""
    if isinstance(spec.rule, Flag):
        # Off unless given; GlueStyleCommand also takes Glue's --restart true|false.
        if spec.default is not False:
            raise TypeError(f"{spec.option}: a flag option must default to false")
        option = typer.Option(spec.option, help=spec.help)
        return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=False,
                                 annotation=Annotated[bool, option])
    # Every other value arrives as text, as from Glue, so the registry's rule checks it.
    option = typer.Option(spec.option, help=spec.help, metavar=spec.rule.metavar)
    if spec.required:
        return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY,
                                 annotation=Annotated[str, option])
    default = None if spec.default is None else glue_text(spec.default)
    return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[str | None, option])


def job_options(command: Command, exclude: frozenset[str] = frozenset()) -> Callable[[F], F]:
    """Give a command function the options of every argument the registry exposes for
    ``command`` (but those named in ``exclude``), between its positional parameters and its
    keyword-only ones."""
    def decorate(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        generated = [_parameter(s) for s in job_argument_specs()
                     if command in s.commands and s.name not in exclude]
        func.__signature__ = signature.replace(parameters=[  # type: ignore[attr-defined]
            *(p for p in own if p.kind is not p.KEYWORD_ONLY), *generated,
            *(p for p in own if p.kind is p.KEYWORD_ONLY)])
        return func
    return decorate


def glue_values(job_values: Mapping[str, object]) -> dict[str, str]:
    """The options given, as the strings Glue would pass (flags as ``true``/``false``)."""
    return {name: glue_text(value) for name, value in job_values.items() if value is not None}


def glue_style_flags(args: Sequence[str], options: Sequence[TyperOption]) -> list[str]:
    """``--restart true`` and ``--restart=true`` (Glue's form: every value a string) → the
    flag ``--restart``; ``--restart false`` → nothing, as the flag is off unless given."""
    flags = _glue_style(options)
    words = (*TRUE_WORDS, *FALSE_WORDS)
    out: list[str] = []
    flag_before = False  # the previous argument was a flag that a true/false may follow
    for arg in args:
        name, equals, value = arg.partition("=")
        if flag_before and arg.lower() in words:
            if arg.lower() in FALSE_WORDS:
                out.pop()
        elif equals and name in flags:
            out += [name] if _flag_value(name, value) else []
        else:
            out.append(arg)
        flag_before = arg in flags
    return out


def _glue_style(options: Sequence[TyperOption]) -> set[str]:
    """The flags that take Glue's true/false: every boolean option off unless given."""
    return {o.opts[0] for o in options
            if o.is_bool_flag and not o.secondary_opts and o.default is False}


def _flag_value(option: str, value: str) -> bool:
    """A flag's Glue-style value, checked by the registry's one rule for booleans
    (:class:`ArgumentError` naming the values it takes)."""
    return Flag().parse(option.lstrip("-"), value)


def _misplaced_flag_value(args: Sequence[str],
                          options: Sequence[TyperOption]) -> tuple[str, str] | None:
    """The first flag followed by a word other than true/false (which the parser took for an
    extra argument), as given."""
    flags, words = _glue_style(options), (*TRUE_WORDS, *FALSE_WORDS)
    for flag, word in itertools.pairwise(args):
        if flag in flags and not word.startswith("-") and word.lower() not in words:
            return flag, word
    return None


class GlueStyleCommand(TyperCommand):
    """A command whose boolean options also take Glue's ``--flag true|false``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Rewrite Glue-style boolean values, then parse as Typer does. A word after a flag
        that is neither true nor false nor a positional argument is the flag's bad value,
        and the error says so (the parser alone would call it an unexpected argument)."""
        options = [p for p in self.params if isinstance(p, TyperOption)]
        try:
            rewritten = glue_style_flags(args, options)
            try:
                return super().parse_args(ctx, rewritten)
            except UsageError:
                misplaced = _misplaced_flag_value(args, options)
                if misplaced is None:
                    raise
                _flag_value(*misplaced)
                raise
        except ArgumentError as err:
            raise UsageError(str(err), ctx) from None
