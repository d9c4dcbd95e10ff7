"""BuildKit's Dockerfile build checks (``docker build --check``), by BuildKit's rule names.

    report = lint(parse_dockerfile(text, "Dockerfile"), text, build_args={"V": "1"})
    for w in report.warnings:
        print(w.format())        # Dockerfile:3:6: warning: StageNameCasing: …, line, caret
    sys.exit(1 if report.failed else 0)

:func:`lint` takes the syntax tree (so that a file the instructions layer rejects, e.g. with a
duplicate stage name, is still checked), the source text (for carets), the build args, the
target and build platforms, the ``.dockerignore`` patterns, and optionally ``image_config``, a
``(ref, platform) -> image config | None`` function (the driver wraps its resolver) that lets
UndefinedVar see base images' ENV and InvalidBaseImagePlatform compare platforms. Which rules run
and whether a warning is an error come from ``# check=`` or the ``BUILDKIT_DOCKERFILE_CHECK``
build arg (:mod:`.config`). Rules and messages: :mod:`.rules`, :mod:`.syntax_rules`,
:mod:`.scope_rules`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mason.frontends.dockerfile.checks.config import BUILD_ARG, CheckConfig, parse_check_config
from mason.frontends.dockerfile.checks.report import CheckWarning, Collector
from mason.frontends.dockerfile.checks.rules import RULE_NAMES, RULES, Rule
from mason.frontends.dockerfile.checks.scope_rules import ImageConfigFn, ScopeChecker, is_secret_name
from mason.frontends.dockerfile.checks.stages import split_stages
from mason.frontends.dockerfile.checks.syntax_rules import check_syntax
from mason.frontends.dockerfile.nodes import ParseResult
from mason.frontends.dockerfile.shell import ExpansionBudget, ShellLex
from mason.ir.resolver import PlatformSpec

__all__ = ["lint", "LintReport", "CheckWarning", "CheckConfig", "parse_check_config",
           "check_config", "Rule", "RULES", "RULE_NAMES", "BUILD_ARG", "ImageConfigFn",
           "is_secret_name"]


@dataclass(frozen=True)
class LintReport:
    """The warnings in source order and the config in force; ``failed``: ``error=true`` and
    at least one warning (the build, or ``--check``, exits 1)."""

    warnings: tuple[CheckWarning, ...]
    config: CheckConfig

    @property
    def failed(self) -> bool:
        return self.config.error and bool(self.warnings)

    def rules(self) -> list[str]:
        """The rules that fired, each once, in order of first warning."""
        return list(dict.fromkeys(w.rule for w in self.warnings))

    def format(self) -> str:
        return "\n".join(w.format() for w in self.warnings)


def check_config(result: ParseResult, build_args: Mapping[str, str] | None = None) -> CheckConfig:
    """The config in force: the ``BUILDKIT_DOCKERFILE_CHECK`` build arg if given, else the
    ``# check=`` directive, else the defaults (every non-experimental rule, warnings only)."""
    if build_args and BUILD_ARG in build_args:
        return parse_check_config(build_args[BUILD_ARG], None, f"--build-arg {BUILD_ARG}")
    for d in result.directives:
        if d.name.lower() == "check":
            return parse_check_config(d.value, d.loc, "# check directive")
    return CheckConfig()


def lint(result: ParseResult, text: str | None = None, *,
         build_args: Mapping[str, str] | None = None,
         target: str | None = None, all_targets: bool = True,
         target_platform: PlatformSpec | None = None, build_platform: PlatformSpec | None = None,
         excludes: Iterable = (), image_config: ImageConfigFn | None = None) -> LintReport:
    """Run the build checks on a parsed Dockerfile. ``excludes`` are the ``.dockerignore``
    patterns (strings or :class:`~mason.ir.patterns.Pattern`). ``image_config`` is asked only
    for the base images of the stages ``target`` needs, or of every stage with
    ``all_targets`` (``--check``). Raises :class:`~mason.ir.errors.MasonError` for a malformed
    ``# check=`` directive or build arg; never for anything else in the file."""
    args = dict(build_args or {})
    config = check_config(result, args)
    file = result.loc.file if result.loc is not None else "Dockerfile"
    lines = text.split("\n") if text is not None else None
    out = Collector(config, lines, file)
    check_syntax(result, out)
    lex = ShellLex(result.escape, budget=ExpansionBudget())
    tp = target_platform or PlatformSpec.default()
    bp = build_platform or PlatformSpec.default()

    layout = split_stages(result, text)
    checker = ScopeChecker(layout, out, lex, build_args=args, target_platform=tp,
                           build_platform=bp, excludes=excludes, image_config=image_config,
                           target=target, all_targets=all_targets)
    checker.run()
    warnings = sorted(out.warnings, key=lambda w: (w.loc.line, w.loc.col))
    return LintReport(tuple(warnings), config)
