"""An example third-party interceptor for dakia-prefork: requests must name a known tenant.

Install it (``pip install tools/plugins/python``) and use the name its package declares in
the ``dakia_prefork.interceptors`` entry-point group::

    interceptors:
      - name: example_tenant
        config: {tenants: [acme, globex], header: X-Tenant}

or, without installing, point a config entry at the class (the module must be importable
by the gateway, e.g. through PYTHONPATH)::

      - name: tenants
        class: "dakia_example_plugin:TenantHeader"
        config: {tenants: [acme]}

A request without the header gets 400, with an unknown tenant 403; a known tenant is sent
upstream as ``X-Tenant-Id`` and echoed on the response as ``X-Served-Tenant``.
"""
from __future__ import annotations

from typing import Any, ClassVar

from dakia_prefork.interceptors import Context, Interceptor, Reply


class TenantHeader(Interceptor):
    name = "example_tenant"

    # Checked when the config loads; violations are reported with their path, like the
    # gateway's own settings (gateways[0].interceptors[1].config.tenants[0]: ...).
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["tenants"],
        "properties": {
            "tenants": {"type": "array", "minItems": 1,
                        "items": {"type": "string", "pattern": "^[a-z0-9-]+$"}},
            "header": {"type": "string", "minLength": 1},
        },
    }

    def __init__(self, entry: dict[str, Any]) -> None:
        super().__init__(entry)
        config = entry["config"]
        self.tenants = frozenset(config["tenants"])
        self.header = config.get("header", "X-Tenant").lower()

    def request_filter(self, ctx: Context) -> Reply | None:
        tenant = ctx.request.header(self.header)
        if tenant is None:
            return Reply(400, f"400 Bad Request: the {self.header} header is required\n")
        if tenant not in self.tenants:
            return Reply(403, "403 Forbidden: unknown tenant\n")
        ctx.vars["tenant"] = tenant
        ctx.upstream_request.headers.set("x-tenant-id", tenant)
        return None

    def pre_downstream_response(self, ctx: Context) -> None:
        tenant = ctx.vars.get("tenant")
        if tenant is not None and ctx.response is not None:
            ctx.response.headers.set("x-served-tenant", tenant)
