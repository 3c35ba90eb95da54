"""The REST controller (admin API) and metrics: served by one process the master
supervises, never by the master itself (it loads no HTTP stack)."""
