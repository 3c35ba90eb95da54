"""Certificates as operations: what validation and ``check`` say of certificate files,
the SNI choice among a listener's certificates, and ``dakia-master cert``."""
from __future__ import annotations

import datetime
import os
import ssl
import stat
from typing import Any

import pytest

from dakia_prefork.cli import main
from dakia_prefork.config import ConfigError, validate
from dakia_prefork.master.checks import certificate_report
from dakia_prefork.tls.certs import inspect, write_self_signed
from dakia_prefork.tls.contexts import ListenerTls, TlsSettings
from dakia_prefork.tls.redirect import https_redirects, location, status_for
from tests.tlsutil import self_signed_pair


def tls_config(tls: dict[str, Any], *extra_binds: dict[str, Any]) -> dict[str, Any]:
    return {"gateways": [{
        "name": "edge",
        "bind_addresses": [{"host": "127.0.0.1", "port": 8443, "tls": tls}, *extra_binds],
        "upstreams": [{"name": "app", "default": True,
                       "upstream_nodes": [{"address": {"host": "127.0.0.1", "port": 3000}}]}],
    }]}


def errors_of(config: dict[str, Any], base_dir: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate(config, base_dir=base_dir)
    return info.value.errors


CERT0 = "gateways[0].bind_addresses[0].tls.certificates[0]"


def test_a_good_certificate_is_normalised_with_every_default(tmp_path: Any) -> None:
    cert, key = self_signed_pair(str(tmp_path), "a", ["a.example"])
    config, _ = validate(tls_config({"certificates": [{"cert": "a.pem", "key": "a.key"}]}),
                         base_dir=str(tmp_path))
    tls = config["gateways"][0]["bind_addresses"][0]["tls"]
    assert tls == {"certificates": [{"cert": cert, "key": key}], "client_ca": None,
                   "client_subject_header": None, "min_version": "1.2", "ciphers": None}
    assert config["limits"]["tls_handshake_timeout"] == 10


def test_a_missing_certificate_file_is_named(tmp_path: Any) -> None:
    _cert, key = self_signed_pair(str(tmp_path), "a", ["a.example"])
    missing = str(tmp_path / "nope.pem")
    assert errors_of(tls_config({"certificates": [{"cert": missing, "key": key}]}),
                     str(tmp_path)) == [f"{CERT0}: {missing}: no such certificate file"]


def test_a_missing_key_file_is_named(tmp_path: Any) -> None:
    cert, _key = self_signed_pair(str(tmp_path), "a", ["a.example"])
    missing = str(tmp_path / "nope.key")
    assert errors_of(tls_config({"certificates": [{"cert": cert, "key": missing}]}),
                     str(tmp_path)) == [f"{CERT0}: {missing}: no such key file"]


def test_a_key_of_another_certificate_is_refused(tmp_path: Any) -> None:
    cert, _ = self_signed_pair(str(tmp_path), "a", ["a.example"])
    _, other_key = self_signed_pair(str(tmp_path), "b", ["b.example"])
    assert errors_of(tls_config({"certificates": [{"cert": cert, "key": other_key}]}),
                     str(tmp_path)) == [
        f"{CERT0}: {other_key}: this key does not match the certificate {cert}"]


def test_an_encrypted_key_is_refused_with_what_to_do(tmp_path: Any) -> None:
    cert, key = self_signed_pair(str(tmp_path), "a", ["a.example"], passphrase=b"secret")
    [error] = errors_of(tls_config({"certificates": [{"cert": cert, "key": key}]}),
                        str(tmp_path))
    assert error.startswith(f"{CERT0}: {key}: the key is encrypted with a passphrase")
    assert "openssl pkey" in error


def test_files_that_are_not_pem_are_refused(tmp_path: Any) -> None:
    cert, key = self_signed_pair(str(tmp_path), "a", ["a.example"])
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a certificate\n")
    assert errors_of(tls_config({"certificates": [{"cert": str(garbage), "key": key}]}),
                     str(tmp_path)) == [f"{CERT0}: {garbage}: not a PEM certificate"]
    assert errors_of(tls_config({"certificates": [{"cert": cert, "key": str(garbage)}]}),
                     str(tmp_path)) == [
        f"{CERT0}: {garbage}: not a PEM private key (or a damaged one)"]


def test_an_unreadable_key_is_refused(tmp_path: Any) -> None:
    cert, _ = self_signed_pair(str(tmp_path), "a", ["a.example"])
    directory = tmp_path / "key-is-a-directory.key"
    directory.mkdir()
    [error] = errors_of(tls_config({"certificates": [{"cert": cert, "key": str(directory)}]}),
                        str(tmp_path))
    assert error == f"{CERT0}: {directory}: cannot read the key file: Is a directory"


def test_tls_settings_are_checked(tmp_path: Any) -> None:
    cert, key = self_signed_pair(str(tmp_path), "a", ["a.example"])
    pair = [{"cert": cert, "key": key}]
    where = "gateways[0].bind_addresses[0]"
    assert errors_of(tls_config({"certificates": pair, "ciphers": "NO-SUCH-CIPHER"}),
                     str(tmp_path)) == [
        f"{where}.tls.ciphers: 'NO-SUCH-CIPHER': OpenSSL knows no cipher of this list"]
    assert errors_of(tls_config({"certificates": pair, "client_ca": "nope.pem"}),
                     str(tmp_path)) == [
        f"{where}.tls.client_ca: no such file: {tmp_path / 'nope.pem'}"]
    assert errors_of(tls_config({"certificates": pair,
                                 "client_subject_header": "x-client-subject"}),
                     str(tmp_path)) == [
        f"{where}.tls.client_subject_header: needs client_ca: without client certificates "
        "there is no subject"]
    assert errors_of(tls_config({"certificates": pair, "min_version": "1.1"}),
                     str(tmp_path)) == [
        f"{where}.tls.min_version: '1.1' is not one of ['1.2', '1.3', 1.2, 1.3]"]
    config = tls_config({"certificates": pair})
    config["gateways"][0]["bind_addresses"][0]["proxy_protocol"] = True
    assert errors_of(config, str(tmp_path)) == [
        f"{where}.proxy_protocol: not supported on a TLS listener yet (the PROXY header "
        "comes before the handshake)"]
    # YAML's unquoted 1.3 is a number: the same version.
    config, _ = validate(tls_config({"certificates": pair, "min_version": 1.3}),
                         base_dir=str(tmp_path))
    assert config["gateways"][0]["bind_addresses"][0]["tls"]["min_version"] == "1.3"


def test_redirect_https_needs_a_tls_listener(tmp_path: Any) -> None:
    cert, key = self_signed_pair(str(tmp_path), "a", ["a.example"])
    plain = {"gateways": [{"name": "edge", "bind_addresses": [
        {"host": "127.0.0.1", "port": 8080, "redirect_https": True}],
        "upstreams": [{"name": "app", "default": True, "upstream_nodes": [
            {"address": {"host": "127.0.0.1", "port": 3000}}]}]}]}
    assert errors_of(plain, str(tmp_path)) == [
        "gateways[0].bind_addresses[0].redirect_https: the gateway has no TLS listener with "
        "a port to redirect to; add one with a tls block"]
    config = tls_config({"certificates": [{"cert": cert, "key": key}]})
    config["gateways"][0]["bind_addresses"][0]["redirect_https"] = True
    assert errors_of(config, str(tmp_path)) == [
        "gateways[0].bind_addresses[0].redirect_https: this listener is TLS already; "
        "redirect_https is for a plain listener"]
    config, _ = validate(tls_config({"certificates": [{"cert": cert, "key": key}]},
                                    {"host": "127.0.0.1", "port": 8080,
                                     "redirect_https": True}), base_dir=str(tmp_path))
    binds = config["gateways"][0]["bind_addresses"]
    assert binds[1] == {"host": "127.0.0.1", "port": 8080, "redirect_https": True}
    assert https_redirects(binds) == {"127.0.0.1:8080": b":8443"}


def test_redirect_locations() -> None:
    assert location("a.example", b"", b"/p?q=1") == b"https://a.example/p?q=1"
    assert location("::1", b":8443", b"/") == b"https://[::1]:8443/"
    assert (status_for(b"GET"), status_for(b"HEAD"), status_for(b"POST")) == (301, 301, 308)


def test_check_reports_names_and_expiry_and_warns_of_expiring_ones(tmp_path: Any) -> None:
    good = self_signed_pair(str(tmp_path), "good", ["a.example", "*.b.example"],
                            valid_days=90)
    soon = self_signed_pair(str(tmp_path), "soon", ["soon.example"], valid_days=3)
    expired = self_signed_pair(str(tmp_path), "old", ["old.example"], valid_days=-2)
    config, _ = validate(tls_config({"certificates": [
        {"cert": c, "key": k} for c, k in (good, soon, expired)]}), base_dir=str(tmp_path))
    lines, warnings = certificate_report(config)
    expiry = inspect(*good).not_after.strftime("%Y-%m-%d %H:%M UTC")
    assert lines[0] == f"{CERT0}: {good[0]}: a.example, *.b.example; expires {expiry}"
    assert [line.split(": ")[2].split(";")[0] for line in lines] == [
        "a.example, *.b.example", "soon.example", "old.example"]
    assert len(warnings) == 2
    where = "gateways[0].bind_addresses[0].tls.certificates"
    assert warnings[0].startswith(f"{where}[1]: {soon[0]}: the certificate expires in 3.0 days")
    assert warnings[1].startswith(f"{where}[2]: {expired[0]}: the certificate expired on ")


def test_check_command_prints_certificates_and_warnings(tmp_path: Any,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    import yaml
    self_signed_pair(str(tmp_path), "soon", ["soon.example"], valid_days=10)
    config = tls_config({"certificates": [{"cert": "soon.pem", "key": "soon.key"}]})
    path = tmp_path / "dakia.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["check", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    assert f"certificate {CERT0}: {tmp_path / 'soon.pem'}: soon.example; expires " in out
    assert "configuration is valid" in out
    assert f"warning: {CERT0}: {tmp_path / 'soon.pem'}: the certificate expires in " in err
    (tmp_path / "soon.key").unlink()
    assert main(["check", "-c", str(path)]) == 1
    _out, err = capsys.readouterr()
    assert f"{CERT0}: {tmp_path / 'soon.key'}: no such key file" in err


def test_cert_command_writes_a_usable_pair(tmp_path: Any,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "certs"
    assert main(["cert", "--names", "a.example,*.b.example,127.0.0.1", "--out", str(out),
                 "--days", "7"]) == 0
    cert, key = str(out / "cert.pem"), str(out / "key.pem")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    info = inspect(cert, key)
    assert info.names == ("a.example", "*.b.example")     # the IP is not a DNS name
    assert 6.9 < info.days_left() <= 7.0
    assert "valid 7 days" in capsys.readouterr().out
    # Never over an existing pair.
    assert main(["cert", "--names", "a.example", "--out", str(out)]) == 1
    assert "exists; not overwritten" in capsys.readouterr().err
    assert inspect(cert, key).names == ("a.example", "*.b.example")


def test_write_self_signed_key_is_never_readable_by_others(tmp_path: Any) -> None:
    old = os.umask(0)
    try:
        _cert, key = write_self_signed(str(tmp_path), ["a.example"], 1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


def test_sni_selection_exact_then_wildcard_then_default(tmp_path: Any) -> None:
    a = self_signed_pair(str(tmp_path), "a", ["a.example", "www.a.example"])
    b = self_signed_pair(str(tmp_path), "b", ["*.b.example"])
    c = self_signed_pair(str(tmp_path), "c", ["x.b.example", "a.example"])
    listener = ListenerTls(TlsSettings(((a[0], a[1]), (b[0], b[1]), (c[0], c[1])), None, None,
                                       "1.2", None))
    ctx_a = listener.context
    ctx_b = listener.select("y.b.example")
    ctx_c = listener.select("x.b.example")
    assert len({id(ctx_a), id(ctx_b), id(ctx_c)}) == 3
    assert listener.select("A.Example.") is ctx_a       # case and a trailing dot
    assert listener.select("a.example") is ctx_a        # the first certificate wins a name
    assert listener.select("b.example") is ctx_a        # a wildcard covers one label only
    assert listener.select("z.y.b.example") is ctx_a
    assert listener.select(None) is ctx_a
    assert listener.select("unknown.example") is ctx_a
    assert ctx_a.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx_a.verify_mode == ssl.CERT_NONE
    ciphers = {c["name"] for c in ctx_a.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert ciphers and all(name.startswith("ECDHE-") for name in ciphers)
    assert all("GCM" in name or "CHACHA20" in name for name in ciphers)


def test_days_left_counts_from_now() -> None:
    from dakia_prefork.tls.certs import CertificateInfo
    when = datetime.datetime(2030, 1, 15, tzinfo=datetime.timezone.utc)
    info = CertificateInfo("x.pem", "CN=x", ("x",), when)
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    assert info.days_left(now) == 14.0
    assert info.expiry_problem(now) is None
    assert info.expiry_problem(now + datetime.timedelta(hours=1)) is not None


def test_the_subject_header_is_the_gateways_alone() -> None:
    from dakia_prefork.message.heads import RequestHead
    from dakia_prefork.tls.subject import header_value, with_subject
    head = RequestHead(b"GET", b"/", b"1.1", [
        (b"host", b"a"), (b"x-client-subject", b"CN=forged"),
        (b"connection", b"keep-alive, X-Client-Subject"), (b"x-client-subject", b"CN=again")],
        None, False, True, False)
    got = with_subject(head, b"x-client-subject", "CN=ops,O=Example")
    assert got.headers == [(b"host", b"a"), (b"connection", b"keep-alive"),
                           (b"x-client-subject", b"CN=ops,O=Example")]
    alone = RequestHead(b"GET", b"/", b"1.1", [(b"connection", b"x-client-subject")],
                        None, False, True, False)
    assert with_subject(alone, b"x-client-subject", "").headers == []
    assert header_value("CN=Zoë\n") == b"CN=Zo\\C3\\AB\\0A"


def test_a_subject_header_the_gateway_owns_is_refused(tmp_path: Any) -> None:
    cert, key = self_signed_pair(str(tmp_path), "a", ["a.example"])
    ca, _ = self_signed_pair(str(tmp_path), "ca", ["ca.example"])
    [error] = errors_of(tls_config({"certificates": [{"cert": cert, "key": key}],
                                    "client_ca": ca, "client_subject_header": "Host"}),
                        str(tmp_path))
    assert error == ("gateways[0].bind_addresses[0].tls.client_subject_header: 'Host' is a "
                     "header the gateway writes or relies on; choose another name "
                     "(e.g. x-client-subject)")


def test_check_warns_of_a_key_every_user_can_read(tmp_path: Any) -> None:
    cert, key = self_signed_pair(str(tmp_path), "a", ["a.example"])
    os.chmod(key, 0o644)
    config, _ = validate(tls_config({"certificates": [{"cert": cert, "key": key}]}),
                         base_dir=str(tmp_path))
    _lines, warnings = certificate_report(config)
    assert warnings == [f"{CERT0}: {key}: the private key is readable by every user (mode "
                        "0644); chmod 600 it"]
    os.chmod(key, 0o640)
    assert certificate_report(config)[1] == []
