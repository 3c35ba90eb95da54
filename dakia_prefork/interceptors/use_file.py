"""``use_file``: answer with files from a directory; the upstream is not called.

::

    config:
      root: /srv/www                 # required; relative to the config file's directory
      index: index.html              # served for a directory; null: directories are 404
      strip_prefix: /static          # /static/app.js -> <root>/app.js
      path_regex: {pattern: "^/v[0-9]+/(.*)$", replacement: "/$1"}
      hidden: false                  # true: also serve names starting with a dot
      types: {".wasm": application/wasm}    # extra extension -> Content-Type
      charset: utf-8                 # added to text types; null: not added
      cache_control: null            # e.g. "public, max-age=3600"

Runs in ``request_filter`` and always answers: GET and HEAD get the file (200, 206, 304,
416, see fileserve.py), other methods 405. The path is rewritten first (strip_prefix, then
path_regex, on the raw path the client sent, as request_rewrite does), then mapped below
``root`` (fileroot.py: traversal in any encoding answers 400, a symlink leading out of
the root or a missing file 404, a hidden file 404, an unreadable one 403). A directory
asked without its final slash is redirected (301) to it, as nginx does, so relative links
in its index resolve. A root that does not exist (yet) answers 404, as nginx does: Dakia's
config files name roots that may be mounted later.

Use a ``filter`` to scope it (``path: {$starts_with: /static}``): the upstream then
serves everything else.
"""
from __future__ import annotations

import os
from typing import Any

from .base import Interceptor, Problem, Problems, register
from .context import Context, Reply
from .fileroot import BadPath, HiddenPath, IsDirectory, Opened, Root, segments
from .fileserve import FileOptions, serve
from .pathrewrite import PathRewrite

_NOT_FOUND = Reply(404, b"404 Not Found\n")
_FORBIDDEN = Reply(403, b"403 Forbidden\n")
_BAD_PATH = Reply(400, b"400 Bad Request: invalid path\n")
_NOT_ALLOWED = Reply(405, b"405 Method Not Allowed\n", [("allow", "GET, HEAD")])


class FileInterceptor(Interceptor):
    """What ``use_file`` and ``try_file`` share: a root, a path rewrite, file options."""

    @classmethod
    def check(cls, entry: dict[str, Any], base_dir: str) -> list[Problem]:
        """Make ``root`` absolute (relative to the config file), then build."""
        config = entry["config"]
        config["root"] = os.path.join(base_dir, config["root"])
        return super().check(entry, base_dir)

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        config = entry["config"]
        problems = Problems()
        self.root = Root(config["root"])
        if os.path.exists(self.root.real) and not os.path.isdir(self.root.real):
            problems.add("config.root", f"{config['root']} is not a directory")
        self.index: str | None = config.get("index", "index.html")
        if self.index is not None and ("/" in self.index or self.index in (".", "..")):
            problems.add("config.index", "a file name, not a path")
        self.hidden = bool(config.get("hidden", False))
        self.rewrite = PathRewrite(config, problems)
        self.options = FileOptions(dict(config.get("types", {})), config.get("charset", "utf-8"),
                                   config.get("cache_control"))
        self.configure(config, problems)
        problems.raise_any()

    def configure(self, config: dict[str, Any], problems: Problems) -> None:
        """Read a subclass's own settings; its problems are reported with the shared ones."""

    def locate(self, ctx: Context) -> Opened | Reply | None:
        """The file for this request, an answer that replaces it (400, 403, 301), or None
        when there is no such file."""
        path = self.rewrite.apply(ctx.request.path)
        try:
            parts = segments(path, self.hidden)
            return self.root.open(parts, self.index, path.endswith("/"))
        except HiddenPath:
            return _NOT_FOUND
        except BadPath:
            return _BAD_PATH
        except IsDirectory:
            query = ctx.request.query_string
            location = ctx.request.path + "/" + (f"?{query}" if query else "")
            return Reply(301, b"301 Moved Permanently\n", [("location", location)])
        except PermissionError:
            return _FORBIDDEN


@register
class UseFile(FileInterceptor):
    name = "use_file"

    def request_filter(self, ctx: Context) -> Reply | None:
        if ctx.request.method not in ("GET", "HEAD"):
            return _NOT_ALLOWED
        found = self.locate(ctx)
        if found is None:
            return _NOT_FOUND
        if isinstance(found, Reply):
            return found
        return serve(ctx.request, found, self.options)
