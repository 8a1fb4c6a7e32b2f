"""The local runtime: one driver process, its worker and actor processes, shared memory.

    _node.py          Node, the driver's side: submission, objects, the I/O shell's actions
    _node_io.py       processes and the I/O thread: spawning, the selector loop, messages in
    _node_actors.py   actor messages in, actor-table actions out
    _node_wait.py     get, wait and futures; a caller reading its own reply off a worker's socket
    _scheduler.py     the task scheduler: a pure state machine (resources, workers, queues)
    _actors.py        the actor table: a pure state machine (lifecycle, queueing, restarts)
    _store.py         the object table: refcounts, shared memory, spilling
    _protocol.py      the wire: message kinds, framing, the driver's and the worker's ends
    _worker.py        the worker process's main loop, and WorkerClient (the API inside it)
"""
