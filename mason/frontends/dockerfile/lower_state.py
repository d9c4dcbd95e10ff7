"""The state the Dockerfile lowering threads through one build stage, and the helpers every
instruction's lowering shares (emitting ops and ConfigOps, op metadata, variable expansion).

Like BuildKit's ``dispatchState``, a :class:`StageState` holds the current filesystem (a
:class:`Ref`, None = scratch) and the exec context later instructions inherit: the environment
(BuildKit's ``llb`` EnvList: replacing a variable moves it to the end), the working directory,
the user, the SHELL, the ARGs declared in the stage. The image config itself is *not* built
here: each config instruction emits a mason ``ConfigOp`` into the chain and ``hoist-config``
folds them (see ``mason.ir.layers`` for the convention: a layer op's history entry rides in
its metadata under ``mason.history``). Only the few config facts later instructions read are
mirrored (the image's Env order, User, WorkingDir, Shell, OnBuild).
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any, Iterable

from mason.frontends.dockerfile.shell import ShellError, ShellLex
from mason.ir.builder import CUSTOM_NAME, DEFAULT_PATH, State, config_change, parse_platform, scratch
from mason.ir.errors import MasonError, SourceLoc
from mason.ir.imageconfig import HISTORY_COMMENT, ConfigFolder
from mason.ir.layers import HISTORY_KEY  # where a layer op's history entry rides
from mason.ir.resolver import PlatformSpec

if TYPE_CHECKING:  # pragma: no cover
    from mason.frontends.dockerfile.lower import Lowerer
    from mason.ir.ops import ConfigChange, Platform, Ref  # types only: ops come from the builder

__all__ = [
    "DEFAULT_SHELL", "DEFAULT_PATH", "HISTORY_KEY", "CUSTOM_NAME", "COMMAND_KEY", "StageState",
    "change_set", "change_env", "change_label", "change_add", "change_append", "cjson",
    "to_platform",
]

DEFAULT_SHELL = ("/bin/sh", "-c")
COMMAND_KEY = "com.docker.dockerfile.v1.command"


def cjson(value: Any) -> str:
    """The JSON text of a ConfigChange value: compact, keys sorted (it is part of a digest)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def change_set(key: str, value: Any) -> ConfigChange:
    return config_change("set", key, cjson(value))


def change_env(key: str, value: str) -> ConfigChange:
    return config_change("env", key, value)


def change_label(key: str, value: str) -> ConfigChange:
    return config_change("label", key, value)


def change_add(key: str, value: dict) -> ConfigChange:
    return config_change("add", key, cjson(value))


def change_append(key: str, value: list) -> ConfigChange:
    return config_change("append", key, cjson(value))


def to_platform(p: PlatformSpec) -> Platform:
    out = parse_platform(f"{p.os}/{p.architecture}/{p.variant}" if p.variant else f"{p.os}/{p.architecture}")
    assert out is not None
    return out


class StageState:
    """One stage being lowered (mutable while its instructions are lowered, then frozen in
    ``ref`` and the mirrored fields that a ``FROM <stage>`` inherits)."""

    __slots__ = (
        "lw", "index", "name", "label", "pspec", "platform", "fs", "env", "_env_items",
        "img_env", "cwd", "workdir", "user", "shell", "cmd_set", "onbuild", "build_args", "root_config",
        "cmd_index", "cmd_total", "done", "loc", "base_name", "_folder", "overridden",
    )

    def __init__(self, lw: "Lowerer", index: int, name: str | None, label: str,
                 pspec: PlatformSpec, loc: SourceLoc | None):
        self.lw = lw
        self.index = index
        self.name = name
        self.label = label  # the progress prefix: the stage name, "stage-N", or "" (one stage)
        self.pspec = pspec
        self.platform = to_platform(pspec)
        self.fs: State = scratch(platform=self.platform)  # the filesystem (and the platform)
        self.env: dict[str, str] = {}  # the exec environment (EnvList order)
        self._env_items: tuple[tuple[str, str], ...] | None = None  # env as State.env, per change
        self.img_env: dict[str, str] = {}  # the image config's Env (replaced in place)
        self.cwd = ""  # the exec working directory (llb's Dir)
        self.workdir = ""  # the image config's WorkingDir
        self.user = ""
        self.shell: tuple[str, ...] = ()
        self.cmd_set = False
        self.onbuild: list[str] = []
        self.build_args: list[tuple[str, str | None]] = []
        self.root_config: dict | None = None
        self.overridden = False  # replaced by a --build-context of its name
        self._folder: ConfigFolder | None = None  # owns root_config once this stage changed it
        self.cmd_index = 0
        self.cmd_total = 0
        self.done = False
        self.loc = loc
        self.base_name = ""

    # -- environment
    def add_env(self, key: str, value: str) -> None:
        """BuildKit's ``AddOrReplace``: delete, then append."""
        env = self.env
        if key in env:
            del env[key]
        env[key] = value
        self._env_items = None

    def set_env(self, env: dict[str, str]) -> None:
        """The whole environment replaced (a stage starting from another's)."""
        self.env = env
        self._env_items = None

    def effective_shell(self) -> tuple[str, ...]:
        return self.shell or DEFAULT_SHELL

    # -- expansion
    def expand(self, word: str, loc: SourceLoc | None, lex: ShellLex | None = None) -> str:
        """One word expanded with the stage's environment (quotes removed)."""
        try:
            return (lex or self.lw.shlex).process_word(word, self.env, loc, self.lw.budget)
        except ShellError as e:
            raise MasonError(e.message, loc) from None

    def expand_words(self, word: str, loc: SourceLoc | None) -> list[str]:
        try:
            return self.lw.shlex.process_words(word, self.env, loc)
        except ShellError as e:
            raise MasonError(e.message, loc) from None

    # -- emitting
    @property
    def ref(self) -> Ref | None:
        """The stage's filesystem so far (None: scratch)."""
        return self.fs.ref

    def exec_state(self) -> State:
        """The filesystem with the exec context RUN sees (environment, cwd, user)."""
        items = self._env_items
        if items is None:  # one tuple per change of the environment: the builder caches by it
            items = self._env_items = tuple(self.env.items())
        return State(self.fs.ref, items, self.cwd or "/", self.user, self.platform)

    def emit_config(self, changes: Iterable[ConfigChange], created_by: str,
                    loc: SourceLoc | None) -> None:
        """A ConfigOp in the chain: the instruction's config changes and its empty-layer
        history entry (``created_by``; "" for none). On scratch there is no op to carry it
        (a ConfigOp needs an input), so the change goes straight into the base config."""
        if self.ref is None:  # one copy per stage, then in place (linear in ENV lines)
            if self._folder is None:
                self._folder = ConfigFolder(copy.deepcopy(self.root_config or {}))
            self.root_config = self._folder.apply(changes, created_by or None)
            return
        self.fs = self.fs.config(*changes, created_by=created_by, loc=loc)

    def metadata(self, original: str, *, history: str | None = None, command: bool = False,
                 name: str | None = None, step: bool = True) -> dict[str, str]:
        """An op's metadata descriptions: the progress name (``[stage-1 2/4] RUN …``), the Dockerfile command,
        and the layer's history entry (``created_by``) for ``hoist-config``."""
        desc: dict[str, str] = {}
        if step:
            self.cmd_index += 1
        text = name if name is not None else original
        desc[CUSTOM_NAME] = self.prefix() + text
        desc["mason.stage"] = self.name or str(self.index)  # --no-cache-filter, --explain
        if self.build_args:  # which exec env names are build args (--explain)
            desc["mason.args"] = ",".join(k for k, _ in self.build_args)
        if command:
            desc[COMMAND_KEY] = original
        if history is not None:
            desc[HISTORY_KEY] = json.dumps({"comment": HISTORY_COMMENT, "created_by": history},
                                           ensure_ascii=False, separators=(",", ":"),
                                           sort_keys=True)
        return desc

    def prefix(self) -> str:
        if self.cmd_total <= 0:
            return ""
        label = self.label + " " if self.label else ""
        return f"[{label}{self.cmd_index}/{self.cmd_total}] "

