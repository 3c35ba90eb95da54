"""Plugins: interceptors that do not ship with the gateway.

- ``loader``: Python interceptors, from the ``dakia_prefork.interceptors`` entry-point group
  (an installed distribution declares them) or from a ``class: "module:Class"`` path in the
  config; their optional ``config_schema`` is validated when the config loads;
- ``external``: ``external_plugin``, a process in any language answering over a unix
  socket (``protocol`` frames the messages; tools/plugins/PROTOCOL.md documents them),
  with a per-worker connection ``pool``, a timeout and a failure ``policy``;
- ``native``: ``native_plugin``, a C-ABI shared library called through ctypes;
- ``verdict``: what a plugin answers (continue, respond, modify) and how it is applied,
  the same for external and native plugins.
"""
