"""Active health checks: one process per master probes every node of every upstream that
has a ``health_check`` and publishes the verdicts in shared memory (``shm.nodestats``).

``main.run_health_checker`` is the child's entry point (the master forks it and respawns it
when it dies); ``checker`` holds the gevent side and is imported only after monkey-patching,
so the master never loads gevent.
"""
