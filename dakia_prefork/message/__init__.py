"""The HTTP message model: heads, the request view routing and interceptors read, and the
bytes written by hand. Pure (no sockets, no parser), so every process may import it; the
HTTP stack that reads and writes these on connections is ``http/``."""
