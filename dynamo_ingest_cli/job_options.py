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
from typer.core import TyperCommand, TyperOption

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
    flags = {o.opts[0] for o in options
             if o.is_bool_flag and not o.secondary_opts and o.default is False}
    words = (*TRUE_WORDS, *FALSE_WORDS)
    out: list[str] = []
    flag_before = False  # the previous argument was a flag that a true/false may follow
    for arg in args:
        name, equals, value = arg.partition("=")
        if flag_before and arg.lower() in words:
            if arg.lower() in FALSE_WORDS:
                out.pop()
        elif equals and name in flags and value.lower() in words:
            out += [name] if value.lower() in TRUE_WORDS else []
        else:
            out.append(arg)
        flag_before = arg in flags
    return out


class GlueStyleCommand(TyperCommand):
    """A command whose boolean options also take Glue's ``--flag true|false``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Rewrite Glue-style boolean values, then parse as Typer does."""
        options = [p for p in self.params if isinstance(p, TyperOption)]
        return super().parse_args(ctx, glue_style_flags(args, options))
