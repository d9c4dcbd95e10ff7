"""``mason serve``: a build daemon speaking BuildKit's client API (``moby.buildkit.v1.Control``
and the session protocol), so ``buildctl`` and anything else that talks to buildkitd drives
mason's driver, solver and cache. See ``docs/serve.md``."""
