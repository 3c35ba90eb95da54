/*
 * An example dakia-prefork native plugin (tools/plugins/PROTOCOL.md, "Native plugins").
 *
 *   cc -shared -fPIC -O2 -Wall -o example.so example.c
 *
 *   interceptors:
 *     - name: native_plugin
 *       config: {library: /path/to/example.so}
 *
 * What it does (an example policy):
 *   - a path under /private is answered 403 here, unless the request has an X-Pass header;
 *   - a path under /c-error makes the function report an error (the gateway then applies
 *     its on_failure policy), to show how errors are signalled;
 *   - every other request goes upstream with "X-C-Plugin: <method> <target length>".
 *
 * The function must be thread-safe when the gateway runs it with `run: thread`; this one
 * keeps no state at all.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static int starts_with(const char *text, const char *prefix)
{
    return strncmp(text, prefix, strlen(prefix)) == 0;
}

/* The return value for a verdict snprintf wrote: its length, or -1 if it did not fit. */
static int answer(size_t out_len, int written)
{
    if (written < 0 || (size_t)written >= out_len)
        return -1;
    return written;
}

int dakia_request(const char *method, const char *target, const char *headers_json,
                  char *out, size_t out_len)
{
    if (starts_with(target, "/c-error"))
        return -1;
    if (starts_with(target, "/private") && strstr(headers_json, "[\"x-pass\",") == NULL)
        return answer(out_len, snprintf(out, out_len,
            "{\"verdict\":\"respond\",\"status\":403,"
            "\"headers\":{\"content-type\":\"text/plain\"},"
            "\"body\":\"403 Forbidden by the C plugin\\n\"}"));
    /* method is an HTTP token: it needs no JSON escaping. */
    return answer(out_len, snprintf(out, out_len,
        "{\"verdict\":\"modify\",\"set_headers\":{\"x-c-plugin\":\"%s %zu\"}}",
        method, strlen(target)));
}
