"""Prometheus metrics: counted by the workers into shared memory (recorder.py), named
and labelled from the config (keys.py), exposed with prometheus-client (exposition.py).

``exposition`` imports prometheus-client; import it only where metrics are served.
"""
