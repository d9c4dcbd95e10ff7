"""The OCI image config (plain JSON dicts) and the mason ConfigOp's changes applied to it.

An image config is the JSON object of the OCI image spec: ``architecture``, ``os``,
``config`` (Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels, StopSignal,
Healthcheck, Shell, OnBuild, ArgsEscaped), ``rootfs``, ``history``. The ``hoist-config`` pass and
the solver both fold ConfigOp changes with :func:`apply_config_changes`, which is pure.
"""

from __future__ import annotations

import copy
import json
from typing import Iterable

from mason.ir.errors import MasonError
from mason.ir.ops import ConfigChange

__all__ = ["CONFIG_ACTIONS", "empty_image_config", "apply_config_changes", "apply_config_changes_in_place",
           "ConfigFolder", "env_dict", "HISTORY_COMMENT"]

CONFIG_ACTIONS = ("set", "env", "label", "add", "append")
HISTORY_COMMENT = "buildkit.dockerfile.v0"


def empty_image_config(architecture: str = "amd64", os: str = "linux", variant: str = "") -> dict:
    cfg: dict = {"architecture": architecture, "os": os}
    if variant:
        cfg["variant"] = variant
    cfg["rootfs"] = {"type": "layers", "diff_ids": []}
    cfg["config"] = {}
    cfg["history"] = []
    return cfg


def env_dict(config: dict) -> dict[str, str]:
    """``config.Env`` as a dict (later entries win)."""
    out: dict[str, str] = {}
    for e in (config.get("config") or {}).get("Env") or ():
        k, _, v = e.partition("=")
        out[k] = v
    return out


def _json(change: ConfigChange) -> object:
    try:
        return json.loads(change.value)
    except ValueError as e:
        raise MasonError(f"config change {change.action} {change.key}: value is not JSON: {e}") from None


def apply_config_changes(config: dict, changes: Iterable[ConfigChange], created_by: str | None = None) -> dict:
    """A new image config with ``changes`` applied to its ``config`` object (``config`` itself is
    not modified). With ``created_by``, an empty-layer history entry is appended, as BuildKit's
    Dockerfile frontend writes for config-only instructions.

    Actions (see ``llb.proto``): ``set`` key = JSON value (``null`` removes the key — OnBuild
    too, which BuildKit v0.32.2 no longer writes as ``null``; a key starting with ``/`` names a
    top-level field of the image config instead, e.g. ``/author`` for MAINTAINER); ``env``
    sets ``key=value`` in Env, replacing an entry for the same key in place; ``label`` sets
    Labels[key]; ``add`` merges the JSON object value into the map field key (ExposedPorts,
    Volumes); ``append`` extends the list field key with the JSON array value (OnBuild)."""
    return apply_config_changes_in_place(copy.deepcopy(config), changes, created_by)


def apply_config_changes_in_place(out: dict, changes: Iterable[ConfigChange], created_by: str | None = None) -> dict:
    """:func:`apply_config_changes` on ``out`` itself (which the caller owns), returning it: a
    fold over many changes copies the config once, not once per change. A fold over many calls
    (one per ConfigOp) should keep one :class:`ConfigFolder` instead."""
    return ConfigFolder(out).apply(changes, created_by)


class ConfigFolder:
    """Applies ConfigOp changes, call after call, to one image config it owns, in time linear in
    the number of changes: ``env`` changes find the entry to replace through an index of Env
    keys kept across calls (20,000 ``ENV`` lines were quadratic with a scan per change), history
    entries are appended, nothing is copied."""

    __slots__ = ("config", "_env_at", "_env")

    def __init__(self, config: dict):
        self.config = config
        self._env_at: dict[str, int] | None = None  # Env key -> index of its first entry
        self._env: list | None = None  # the list the index describes

    def _env_index(self, env: list) -> dict[str, int]:
        if self._env_at is None or self._env is not env:
            at: dict[str, int] = {}
            for i, e in enumerate(env):
                if isinstance(e, str):
                    at.setdefault(e.partition("=")[0], i)
            self._env_at, self._env = at, env
        return self._env_at

    def apply(self, changes: Iterable[ConfigChange], created_by: str | None = None) -> dict:
        out = self.config
        c = out.get("config")
        if not isinstance(c, dict):
            c = {}
            out["config"] = c
        for ch in changes:
            a, key = ch.action, ch.key
            if a == "set":
                v = _json(ch)
                target, k = (out, key[1:]) if key.startswith("/") else (c, key)
                if k in ("", "config", "history", "rootfs") and target is out:
                    raise MasonError(f"config change set {key}: that top-level field is not settable")
                if v is None:
                    target.pop(k, None)
                else:
                    target[k] = v
            elif a == "env":
                env = c.get("Env")
                if not isinstance(env, list):
                    env = c["Env"] = list(env or ())
                entry = key + "=" + ch.value
                if "=" in key:  # no key of the index: the scan (hand-made LLB only)
                    prefix = key + "="
                    i = next((i for i, e in enumerate(env) if e == key or e.startswith(prefix)), -1)
                else:
                    i = self._env_index(env).get(key, -1)
                if i >= 0:
                    env[i] = entry
                else:
                    if self._env is env and self._env_at is not None:
                        self._env_at.setdefault(entry.partition("=")[0], len(env))
                    env.append(entry)
            elif a == "label":
                labels = c.get("Labels")
                if not isinstance(labels, dict):
                    labels = c["Labels"] = dict(labels or {})
                labels[key] = ch.value
            elif a == "add":
                v = _json(ch)
                if not isinstance(v, dict):
                    raise MasonError(f"config change add {key}: value must be a JSON object")
                m = c.get(key) or {}
                if not isinstance(m, dict):
                    raise MasonError(f"config change add {key}: the field holds a {type(m).__name__}, not an object")
                m.update(v)
                c[key] = m
            elif a == "append":
                v = _json(ch)
                if not isinstance(v, list):
                    raise MasonError(f"config change append {key}: value must be a JSON array")
                cur = c.get(key) or []
                if not isinstance(cur, list):
                    raise MasonError(f"config change append {key}: the field holds a {type(cur).__name__}, not a list")
                cur.extend(v)
                c[key] = cur
                if cur is self._env:
                    self._env_at = None  # Env grew behind the index's back
            else:
                raise MasonError(f"unknown config change action {a!r} (valid: {', '.join(CONFIG_ACTIONS)})")
        if created_by is not None:
            hist = out.get("history")
            if not isinstance(hist, list):
                hist = out["history"] = list(hist or ())
            hist.append({"created_by": created_by, "comment": HISTORY_COMMENT, "empty_layer": True})
            out["history"] = hist
        return out
