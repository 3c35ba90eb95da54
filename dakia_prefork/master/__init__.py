"""The master process: listeners, workers, signals. Never imports gevent or the HTTP path."""
