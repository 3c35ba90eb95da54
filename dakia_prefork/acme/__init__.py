"""ACME certificates (RFC 8555, HTTP-01): obtained and renewed by one process the master
supervises (process.py), stored on disk (storage.py), served by the workers."""
