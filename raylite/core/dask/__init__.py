"""The Dask backend: ``init(address=...)`` runs the same API on a Dask cluster.

    _backend.py   DaskBackend (the driver's side) and WorkerBackend (inside Dask tasks/actors)
    _connect.py   addresses, the TLS handshake, connect timeouts
    _tls.py       the cluster's private CA and certificates (``raylite start`` makes them)
    _state.py     what ``raylite start`` records (~/.raylite/cluster.json), for address="auto"
    _refs.py      ObjectRefs as Dask futures, with lifetimes
    _actors.py    actors, each hosted in a Dask actor (_host.py), calls in order (_calls.py)
    _cluster.py   resources and placement groups from the workers' resources
    _pickling.py  arguments pickled by value where Dask would by reference
    _remote.py    the code that runs on the workers
"""
