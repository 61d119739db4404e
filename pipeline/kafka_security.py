"""Kafka client security: TLS and SASL settings for every client fireplot builds.

``[kafka]`` names the protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), the
SASL mechanism and credentials, and the CA that signed the brokers'
certificates. ``pipeline.config`` checks those keys, as it checks every key,
and builds the ``ssl.SSLContext`` (``ssl_context``; loading it is part of the
check, so a CA file that is not PEM fails at load time). This module is the
one place that turns the checked keys into client settings: keyword
arguments for kafka-python's KafkaProducer, KafkaConsumer and
KafkaAdminClient, and broker credentials for the faust worker. Both get that
one context, so the shipper, the worker and the tools verify a broker exactly
the same way (certificates always checked).

The password never appears in logs, reprs or ``fireplot validate`` output;
``redacted`` is what to print instead of a KafkaConfig. kafka-python logs why
a login or handshake failed but raises only a bare bootstrap timeout:
``watch_failures`` and ``explain`` turn that into one line naming the key to fix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import ssl
from collections import deque
from collections.abc import Iterator
from typing import Any

from pipeline.config import KafkaConfig, check_kafka_security, ssl_context, uses_sasl

REDACTED = "<redacted>"


def client_kwargs(cfg: KafkaConfig) -> dict[str, Any]:
    """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
    check_kafka_security(cfg)
    kwargs: dict[str, Any] = {"security_protocol": cfg.security_protocol}
    ctx = ssl_context(cfg)
    if ctx is not None:
        kwargs |= {"ssl_context": ctx, "ssl_check_hostname": cfg.ssl_check_hostname}
    if uses_sasl(cfg):
        kwargs |= {
            "sasl_mechanism": cfg.sasl_mechanism,
            "sasl_plain_username": cfg.sasl_username,
            "sasl_plain_password": cfg.sasl_password,
        }
    return kwargs


def faust_credentials(cfg: KafkaConfig) -> Any:
    """``broker_credentials`` for faust.App (None for PLAINTEXT)."""
    import faust

    check_kafka_security(cfg)
    ctx = ssl_context(cfg)
    if uses_sasl(cfg):
        # With a context faust speaks SASL_SSL, without one SASL_PLAINTEXT.
        return faust.SASLCredentials(
            username=cfg.sasl_username,
            password=cfg.sasl_password,
            ssl_context=ctx,
            mechanism=cfg.sasl_mechanism,
        )
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None


def redacted(cfg: KafkaConfig) -> dict[str, Any]:
    """The [kafka] section as a dict fit to print: the password replaced."""
    out = dataclasses.asdict(cfg)
    if out.get("sasl_password"):
        out["sasl_password"] = REDACTED
    return out


class FailureWatch(logging.Handler):
    """Keeps the TLS and authentication failures kafka-python logs while it retries.

    kafka-python logs why a connection failed and then, once its bootstrap
    time is up, raises a bare "Unable to bootstrap" timeout: the cause only
    ever reaches the log. Watching the ``kafka`` logger keeps that cause so
    the command can say which key to fix.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.failures: deque[BaseException] = deque(maxlen=8)
        self.login_disconnects = 0

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        # A connection that knows the broker's version got through TLS and ApiVersions:
        # if it is then dropped, what was left to fail is the SASL login.
        past_handshake = any("broker_version=(" in str(a) for a in args)
        for arg in args:
            if not isinstance(arg, BaseException):
                continue
            if _kind(arg) is not None:
                self.failures.append(arg)
            elif past_handshake and "disconnected" in str(arg):
                self.login_disconnects += 1


@contextlib.contextmanager
def watch_failures() -> Iterator[FailureWatch]:
    handler = FailureWatch()
    logger = logging.getLogger("kafka")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


_CLIENT_CERT_ALERTS = (
    "alert unknown ca",
    "alert bad certificate",
    "alert certificate unknown",
    "certificate required",
)


def _kind(exc: BaseException) -> str | None:
    text = f"{type(exc).__name__}: {exc}".lower()
    if isinstance(exc, ssl.SSLCertVerificationError) or "certificate verify failed" in text:
        return "verify"
    if "authenticationfailed" in text or "authentication failed" in text:
        return "auth"
    # TLS alerts the broker sends when it rejects our client certificate (or its absence).
    if any(a in text for a in _CLIENT_CERT_ALERTS):
        return "client-cert"
    if isinstance(exc, ssl.SSLError) or "handshake failed" in text or "wrong version number" in text:
        return "tls"
    return None


def explain(exc: BaseException, cfg: KafkaConfig, watch: FailureWatch | None = None) -> str | None:
    """A one-line operator message for a TLS or authentication failure, None for anything else."""
    causes: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in causes and len(causes) < 8:
        causes.append(e)
        e = e.__cause__ or e.__context__
    if watch is not None:
        causes += reversed(watch.failures)  # newest first
    where = f"Kafka at {cfg.effective_bootstrap}"
    login_dropped = watch is not None and watch.login_disconnects > 0 and uses_sasl(cfg)
    if login_dropped and "unable to bootstrap" in str(exc).lower() and not any(_kind(c) for c in causes):
        # A broker sends its refusal and closes at once; kafka-python 3.0.12 drops data read
        # together with the close (KafkaSSLTransport._sock_recv), so often only the close is seen.
        return (
            f"SASL authentication failed ({where} closed every connection during the login of user "
            f"{cfg.sasl_username!r} with {cfg.sasl_mechanism}): check [kafka] sasl_username and "
            "sasl_password (FIREPLOT_KAFKA__SASL_PASSWORD); the broker's log names the reason"
        )
    for cause in causes:
        kind = _kind(cause)
        if kind is None:
            continue
        if kind == "auth":
            return (
                f"SASL authentication failed ({where}) for user {cfg.sasl_username!r} with "
                f"{cfg.sasl_mechanism}: check [kafka] sasl_username and sasl_password "
                "(FIREPLOT_KAFKA__SASL_PASSWORD)"
            )
        if kind == "client-cert":
            return (
                f"the broker rejected our TLS client certificate ({where}): set [kafka] ssl_certfile and "
                f"ssl_keyfile to a certificate signed by a CA the broker trusts ({cause})"
            )
        if kind == "verify":
            text = str(cause).lower()
            if "hostname" in text or "ip address mismatch" in text:
                hint = "connect by a name the certificate carries, or set [kafka] ssl_check_hostname = false"
            else:
                hint = "set [kafka] ssl_cafile to the CA that signed the broker's certificate"
            return f"TLS certificate verification failed ({where}): {hint} ({cause})"
        return (
            f"TLS handshake failed ({where}): does that port speak {cfg.security_protocol}? "
            f"Check [kafka] security_protocol ({cause})"
        )
    return None
