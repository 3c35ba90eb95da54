"""TLS listeners: certificates (certs.py), the SSL contexts a worker serves with
(contexts.py), and the few request-path helpers built on them (subject.py, redirect.py).

certs.py and contexts.py import only ``ssl`` and ``cryptography``: the master and
``dakia-master check`` use them to validate a config, the workers to serve it.
"""
