"""mason as a client of a build daemon that speaks BuildKit's Control API (``mason build
--host``): :mod:`mason.remote.client` runs the build, :mod:`mason.remote.session` serves the
client's files, outputs, secrets and SSH agents to the daemon."""
