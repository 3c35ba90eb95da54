"""Routing: virtual hosts, the filter language and the per-gateway router.

Pure code: nothing here touches a socket. The worker hands requests in as a
:class:`~dakia_prefork.routing.subject.FilterSubject`; config/ uses the same compilers to
check a configuration, so a config that validates is one the worker can build.
"""
