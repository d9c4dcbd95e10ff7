"""BuildKit's shell-lexer conformance cases (corpus/shell-words), read as corpus/README.md says."""

from __future__ import annotations

from pathlib import Path

import pytest

from mason.frontends.dockerfile.shell import ShellLex
from mason.ir.errors import MasonError

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT.parent / "shared" / "corpus" / "shell-words"

ENV_VAR_ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}

# What the files hold at moby/buildkit v0.32.2 (see SOURCES.txt); a change means re-checking.
EXPECTED_ENV_VAR_CASES = 228  # platforms A and U
EXPECTED_ENV_VAR_SKIPPED = 2  # platform W
EXPECTED_WORDS_CASES = 24


def read_env_var_test() -> tuple[list, int]:
    cases, skipped = [], 0
    text = (CORPUS / "envVarTest").read_text(encoding="utf-8")
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        fields = line.split("|")
        assert len(fields) == 3, f"envVarTest:{lineno}: expected 3 fields: {line!r}"
        platform, source, expected = (f.strip() for f in fields)
        assert platform in ("A", "U", "W"), f"envVarTest:{lineno}: platform {platform!r}"
        if platform == "W":
            skipped += 1
            continue
        cases.append(pytest.param(source, expected, id=f"envVarTest:{lineno}"))
    return cases, skipped


def read_words_test() -> list:
    cases, env = [], {}
    text = (CORPUS / "wordsTest").read_text(encoding="utf-8")
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.startswith("#"):
            continue
        if line.startswith("ENV "):
            name, _, value = line[4:].lstrip(" ").partition("=")
            env = {**env, name: value}
            continue
        if not line.strip():
            continue
        fields = line.split("|")
        assert len(fields) == 2, f"wordsTest:{lineno}: expected one '|': {line!r}"
        source, expected = fields[0].strip(), fields[1].lstrip(" ")
        cases.append(pytest.param(source, expected.split(","), env, id=f"wordsTest:{lineno}"))
    return cases


ENV_VAR_CASES, ENV_VAR_SKIPPED = read_env_var_test()
WORDS_CASES = read_words_test()


def test_corpus_counts() -> None:
    assert len(ENV_VAR_CASES) == EXPECTED_ENV_VAR_CASES
    assert ENV_VAR_SKIPPED == EXPECTED_ENV_VAR_SKIPPED
    assert len(WORDS_CASES) == EXPECTED_WORDS_CASES


@pytest.mark.parametrize(("source", "expected"), ENV_VAR_CASES)
def test_env_var(source: str, expected: str) -> None:
    lex = ShellLex("\\")
    if expected == "error":
        with pytest.raises(MasonError):
            lex.process_word(source, ENV_VAR_ENV)
    else:
        assert lex.process_word(source, ENV_VAR_ENV) == expected


@pytest.mark.parametrize(("source", "expected", "env"), WORDS_CASES)
def test_words(source: str, expected: list[str], env: dict[str, str]) -> None:
    lex = ShellLex("\\")
    try:
        words = lex.process_words(source, env)
    except MasonError:
        words = ["error"]
    assert words == expected
