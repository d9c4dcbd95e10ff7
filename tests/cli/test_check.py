"""``mason build --check``: the build checks printed with location, source line and caret; the
exit code follows ``error=true``; nothing is built."""

from __future__ import annotations

from mason.cli.main import main

BREAKS = """\
{directive}ARG TAG=latest
FROM scratch AS Base
ENV a b
EXPOSE 80/TcP
WORKDIR app
MAINTAINER me
CMD echo hi
CMD ["x"]
FROM --platform=$TARGETPLATFORM scratch as base
COPY $foo /
"""


def _check(tmp_path, capsys, directive=""):
    (tmp_path / "Dockerfile").write_text(BREAKS.format(directive=directive))
    rc = main(["build", "--check", str(tmp_path)])
    return rc, capsys.readouterr()


def test_check_reports_every_broken_rule(tmp_path, capsys):
    rc, out = _check(tmp_path, capsys)
    assert rc == 0
    for rule, line in [("StageNameCasing", 2), ("LegacyKeyValueFormat", 3), ("ExposeProtoCasing", 4),
                       ("WorkdirRelativePath", 5), ("MaintainerDeprecated", 6), ("JSONArgsRecommended", 7),
                       ("MultipleInstructionsDisallowed", 7), ("RedundantTargetPlatform", 9),
                       ("FromAsCasing", 9), ("DuplicateStageName", 9), ("UndefinedVar", 10)]:
        assert f"Dockerfile:{line}:" in out.err and f"warning: {rule}:" in out.err, rule
    assert "    FROM scratch AS Base\n                    ^^^^\n    Stage names should be lowercase" in out.err
    assert "Check complete, 11 warnings found" in out.out


def test_check_skip_and_error(tmp_path, capsys):
    rc, out = _check(tmp_path, capsys, "# check=skip=StageNameCasing\n")
    assert rc == 0 and "StageNameCasing" not in out.err and "UndefinedVar" in out.err
    rc, out = _check(tmp_path, capsys, "# check=error=true\n")
    assert rc == 1 and "error: lint violation found for rules: " in out.err
    assert not (tmp_path / "out").exists()


def test_check_reads_dockerignore(tmp_path, capsys):
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY secret.txt /\n")
    (tmp_path / ".dockerignore").write_text("secret.txt\n")
    assert main(["build", "--check", str(tmp_path)]) == 0
    assert 'CopyIgnoredFile: Attempting to Copy file "secret.txt"' in capsys.readouterr().err
