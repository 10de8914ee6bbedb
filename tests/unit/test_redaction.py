"""Redaction: every shape a secret takes in text is hidden, and log tracebacks are redacted."""

import io
import json
import logging

import pytest

from pcflow.logs import RedactingFilter, RedactingFormatter, rule_logging
from pcflow.redaction import redact

SIG = "Zm9vYmFyYmF6cXV4c2VjcmV0c2ln"  # a made-up signature value (base64-shaped)
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu+Fq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.mark.parametrize(
    "text",
    [
        f"https://acct.blob.core.windows.net/c/b?sv=2021-08-06&se=2030&sp=r&sig={SIG}%3D",
        f"sv=2021-08-06&sig={SIG}&se=2030",
        f"sig={SIG}",
        # URL-encoded (a SAS inside another URL's query or a logged request body).
        f"next=https%3A%2F%2Fa%2Fb%3Fsv%3D2021%26sig%3D{SIG}%252F%26se%3D2030",
        json.dumps({"href": "https://x/y", "sig": SIG}),
        repr({"sig": SIG, "n": 1}),
        f"Authorization: Bearer {SIG}",
        f"headers={{'Authorization': 'Basic {SIG}'}}",
        f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={KEY};EndpointSuffix=x",
        f"BlobEndpoint=https://x;SharedAccessSignature=sv=1&sig={SIG}",
        f"https://planetarycomputer.microsoft.com/api/stac/v1?subscription-key={SIG}",
        f"Ocp-Apim-Subscription-Key: {SIG}",
        json.dumps({"password": SIG}),
        json.dumps({"compute": {"gateway": {"api_token": SIG}}}),
        f"token: {SIG}",
        f"https://user:{SIG}@gateway.example/api",
    ],
)
def test_secret_shapes_are_redacted_without_knowing_the_value(text):
    out = redact(text, environ={})
    assert SIG not in out and KEY not in out, out
    assert "***" in out


def test_known_env_values_are_redacted_plain_and_url_encoded():
    env = {"PCFLOW_TARGET_ACCOUNT_KEY": KEY}
    from urllib.parse import quote

    text = f"key {KEY} and in a url ?k={quote(KEY, safe='')}"
    out = redact(text, environ=env)
    assert KEY not in out and quote(KEY, safe="") not in out


def test_ordinary_text_is_left_alone():
    text = "staged 12 chunks of tmax (signing: planetary-computer) to az://pcflow/demo/x.zarr"
    assert redact(text, environ={}) == text


def _logger_to(stream):
    logger = logging.getLogger("pcflow.test_redaction")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    return logger, handler


def test_exception_tracebacks_are_redacted_by_the_filter():
    stream = io.StringIO()
    logger, handler = _logger_to(stream)
    try:
        try:
            raise RuntimeError(f"GET https://a/b?sv=1&sig={SIG} failed")
        except RuntimeError:
            logger.exception("download failed")
        logger.warning("where", stack_info=True, extra={})
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "Traceback" in out and "RuntimeError" in out
    assert SIG not in out


def test_stack_info_is_redacted():
    stream = io.StringIO()
    logger, handler = _logger_to(stream)
    secret_local = f"sig={SIG}"  # noqa: F841 - a frame line mentioning a secret
    try:
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 1, "m", None, None, sinfo=f"Stack: {secret_local}"
        )
        logger.handle(record)
    finally:
        logger.removeHandler(handler)
    assert SIG not in stream.getvalue()
    assert "Stack: sig=***" in stream.getvalue()


def test_redacting_formatter_redacts_the_whole_output():
    fmt = RedactingFormatter("%(message)s")
    try:
        raise ValueError(f"AccountKey={KEY}")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    out = fmt.format(record)
    assert "ValueError" in out and KEY not in out


def test_rule_logging_failure_keeps_secrets_out_of_log_and_stderr(tmp_path, capsys):
    log_path = tmp_path / "logs" / "stage.log"
    with pytest.raises(SystemExit):
        with rule_logging(log_path, "stage") as log:
            try:
                raise OSError(f"403 for https://a/c?sig={SIG}")
            except OSError:
                log.warning("retrying", exc_info=True)
            raise RuntimeError(f"gave up on https://a/c?se=1&sig={SIG}")
    text = log_path.read_text()
    assert "retrying" in text and "Traceback" in text and "gave up" in text
    assert SIG not in text
    assert SIG not in capsys.readouterr().err
