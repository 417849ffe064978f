"""Log lines: logfmt and JSON, one line per event whatever an alert's text holds."""

import io
import json
import logging

import pytest

from itsmd import logs

HOSTILE = 'x\nts=2026 level=error msg="forged"\r\n\u2028\u202e\x00\x1b[31m"\\'


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


def test_logfmt_keeps_one_line_and_escapes(stream: io.StringIO) -> None:
    logs.configure("logfmt", "info", stream)
    logging.getLogger("itsmd.test").warning("alert %s arrived", HOSTILE, extra={"alertname": HOSTILE, "n": 3})
    out = stream.getvalue()
    assert out.count("\n") == 1
    line = out.rstrip("\n")
    assert "\r" not in line and "\u2028" not in line and "\x00" not in line and "\x1b" not in line
    assert "level=warning" in line and "logger=itsmd.test" in line and " n=3" in line
    expected = 'msg="alert x\\nts=2026 level=error msg=\\"forged\\"\\r\\n\\u2028\\u202e\\x00\\x1b[31m\\"\\\\ arrived"'
    assert expected in line


def test_json_lines_parse_back_to_the_same_text(stream: io.StringIO) -> None:
    logs.configure("json", "info", stream)
    logging.getLogger("itsmd.test").error("boom %s", HOSTILE, extra={"route": "/x"})
    [line] = stream.getvalue().splitlines()
    doc = json.loads(line)
    assert doc["msg"] == f"boom {HOSTILE}" and doc["level"] == "error" and doc["route"] == "/x"
    assert doc["ts"].endswith("Z")


def test_level_filters(stream: io.StringIO) -> None:
    logs.configure("logfmt", "warning", stream)
    logging.getLogger("itsmd.test").info("quiet")
    assert stream.getvalue() == ""


@pytest.mark.parametrize(("value", "expected"), [("plain", "plain"), ("", '""'), ("a b", '"a b"'), (3, "3")])
def test_logfmt_values(value: object, expected: str) -> None:
    assert logs.logfmt_value(value) == expected
