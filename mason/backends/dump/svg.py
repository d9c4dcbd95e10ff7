"""SVG drawing of a graph: the styled DOT text (:mod:`.styled`) laid out by graphviz's ``dot``
(Debian package ``graphviz``; without it, one clear error). Graphviz rather than a layout of our
own: layered drawing with clusters, edge-label placement and crossing reduction is what ``dot``
is, and it is a Debian package away."""

from __future__ import annotations

from mason.backends.dump.graph import BuildGraph
from mason.backends.dump.styled import styled_dot
from mason.ir.errors import MasonError

__all__ = ["render_svg", "layout_svg"]


def layout_svg(source: str) -> str:
    """``source`` (DOT) as an SVG document (runs ``dot -Tsvg``)."""
    import graphviz  # imported here: only the drawn formats need it

    try:
        data = graphviz.Source(source).pipe(format="svg", engine="dot")
    except graphviz.ExecutableNotFound as e:
        raise MasonError(
            "the graphviz 'dot' program is needed to draw a graph (svg, html); install the 'graphviz' package"
            " (apt-get install graphviz)"
        ) from e
    except graphviz.CalledProcessError as e:  # pragma: no cover - dot rejected our own text
        raise MasonError(f"graphviz 'dot' failed: {(e.stderr or b'').decode(errors='replace').strip()}") from e
    return data.decode("utf-8")


def render_svg(g: BuildGraph) -> str:
    """``g`` drawn as an SVG document."""
    return layout_svg(styled_dot(g))
