"""The worker process: gevent patched first thing, then accept, proxy, heartbeat, drain."""
