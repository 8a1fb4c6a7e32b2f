import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


@pytest.fixture(scope="module")
def ray():
    """A 2-CPU runtime shared by the tests of one module."""
    import raylite
    raylite.shutdown()
    raylite.init(num_cpus=2)
    yield raylite
    raylite.shutdown()


@pytest.fixture(scope="module")
def serve_port():
    """A 2-CPU runtime with Serve's proxy on a free loopback port, shared by one module's tests
    (the proxy's host is left to its default, 127.0.0.1)."""
    import raylite
    from raylite import serve
    from _support import free_port
    raylite.shutdown()
    raylite.init(num_cpus=2)
    port = free_port()
    serve.start(detached=False, http_options={"port": port})
    yield port
    serve.shutdown()
    raylite.shutdown()


@pytest.fixture
def serve_url(serve_port):
    """The proxy's base URL; every deployment is deleted after the test, so replicas never
    outgrow the 2 CPUs."""
    yield f"http://127.0.0.1:{serve_port}"
    from raylite import serve
    from raylite.serve import _api
    names = list(serve.status().deployments)
    if names:
        _api.delete_deployments(names)
