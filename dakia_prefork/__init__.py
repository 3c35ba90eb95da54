"""dakia-prefork: an API gateway on a prefork process model (master + gevent workers)."""

__version__ = "0.1.0"
