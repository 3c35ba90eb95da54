"""HTTP/1.1: the parser seam and its engines, the proxy, the upstream pool, the wire format."""
