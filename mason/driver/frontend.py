"""The one place a driver request becomes a frontend and its request: the build file read (and
the ``.dockerignore`` that applies), ``--build-context`` parsed, and the frontend chosen by
:func:`mason.resolution.choose` (``--frontend``, the ``BUILDKIT_SYNTAX`` build arg, the
``# syntax=`` directive, the file name)."""

from __future__ import annotations

from pathlib import Path

from mason.driver.inputs import parse_platforms, read_dockerfile
from mason.driver.requests import LowerRequest
from mason.ir.errors import MasonError
from mason.ir.patterns import find_dockerignore, parse_dockerignore
from mason.ir.resolver import ImageMetaResolver


def choose_frontend(req: LowerRequest, resolver: ImageMetaResolver | None = None):
    """The resolution's choice for ``req`` (:func:`mason.resolution.choose`), the
    :class:`~mason.frontends.base.FrontendRequest` and the build file's path."""
    from mason.frontends.base import FrontendRequest
    from mason.resolution import choose

    context = req.context or "."
    path = str(Path(context) / "Dockerfile") if req.dockerfile is None else req.dockerfile
    text = read_dockerfile(path)
    filename = "<stdin>" if path == "-" else path
    excludes: tuple[str, ...] = ()
    if Path(context).is_dir():
        ignore_path, ignore_text = find_dockerignore(context, path)
        if ignore_text is not None:
            excludes = tuple(str(p) for p in parse_dockerignore(ignore_text, str(ignore_path)))
    elif context != "-":
        raise MasonError(f"build context {context!r} is not a directory")
    platforms = parse_platforms(req.platform)
    if req.target is not None and not req.target:
        raise MasonError("--target needs a stage name")
    from mason.build_contexts import parse_build_contexts

    named = parse_build_contexts(req.build_contexts)
    choice = choose(path, text, filename, frontend=req.frontend, build_args=req.build_args,
                    named_contexts=named.values)
    from mason.ir.runlimits import parse_ulimits

    request = FrontendRequest(text, filename, build_args=dict(req.build_args), target=req.target,
                              platform=platforms[0] if platforms else None, excludes=excludes, resolver=resolver,
                              named_contexts=named.values, context_excludes=named.excludes,
                              shm_size=req.shm_size, ulimits=parse_ulimits(req.ulimits))
    return choice, request, path


def frontend_for(req: LowerRequest, resolver: ImageMetaResolver | None = None):
    """The frontend for ``req`` (:func:`mason.resolution.choose`: ``--frontend``, the
    ``BUILDKIT_SYNTAX`` build arg, ``# syntax=``, the file name) and the
    :class:`~mason.frontends.base.FrontendRequest` to give it: the file's text, the
    ``.dockerignore`` of the context, build args, target, platform (the first, or only, one).
    A frontend image answers no subrequest here: that is an error."""
    choice, request, _ = choose_frontend(req, resolver)
    if choice.frontend is None:
        raise MasonError(f"frontend image {choice.image} (chosen by {choice.how}): subrequests (--call, --check) "
                         "are answered only by built-in and plugin frontends", choice.loc).with_source(request.text)
    return choice.frontend, request

