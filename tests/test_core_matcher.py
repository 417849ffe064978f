"""Label matchers: parsing as Prometheus/Alertmanager write them, matching with Prometheus semantics, printing."""

from __future__ import annotations

import pytest

from itsmd.core.matcher import Matcher, MatchOp, format_labels, format_name, parse_matcher, quote

LABELS = {"alertname": "NodeDown", "severity": "critical", "instance": "node-1:9100", "my label": "x", "empty": ""}


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('alertname="NodeDown"', "alertname", MatchOp.EQ, "NodeDown"),
        ('alertname!="NodeDown"', "alertname", MatchOp.NE, "NodeDown"),
        ('severity=~"critical|warning"', "severity", MatchOp.RE, "critical|warning"),
        ('severity!~"info"', "severity", MatchOp.NRE, "info"),
        ('  job = "node"  ', "job", MatchOp.EQ, "node"),  # blanks around the parts
        ("job=node", "job", MatchOp.EQ, "node"),  # bare words, as amtool accepts
        ("job=~node-.*|db", "job", MatchOp.RE, "node-.*|db"),
        ('foo=""', "foo", MatchOp.EQ, ""),
        ('"my label"="x"', "my label", MatchOp.EQ, "x"),  # quoted UTF-8 name
        ('"ünïcödé.name"!~"a"', "ünïcödé.name", MatchOp.NRE, "a"),
        ("ключ=значение", "ключ", MatchOp.EQ, "значение"),
        (r'msg="say \"hi\""', "msg", MatchOp.EQ, 'say "hi"'),
        (r'path="C:\\temp"', "path", MatchOp.EQ, "C:\\temp"),
        (r'text="a\nb\tc"', "text", MatchOp.EQ, "a\nb\tc"),
        (r'text="\x41\101\u00e9\U0001F600"', "text", MatchOp.EQ, "AAé😀"),
        (r'text="\xc3\xa9"', "text", MatchOp.EQ, "é"),  # bytes forming UTF-8, as in Go
        ('text="a=b,c!~d"', "text", MatchOp.EQ, "a=b,c!~d"),  # reserved characters are fine quoted
        ('re=~"\\\\d+"', "re", MatchOp.RE, "\\d+"),
    ],
)
def test_parse(text: str, name: str, op: MatchOp, value: str) -> None:
    assert parse_matcher(text) == Matcher(name, op, value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected label name, found the end"),
        ("alertname", "expected an operator"),
        ("alertname==x", "expected value"),
        ("alertname=", "found the end"),
        ("alertname=~", "found the end"),
        ('alertname<"x"', "expected an operator"),
        ('="x"', "expected label name"),
        ('""="x"', "label name must not be empty"),
        ('alertname="x', "unterminated quoted string"),
        ('alertname="x\\', "unterminated quoted string"),
        ('alertname="x" junk', "unexpected 'junk'"),
        ('a="1",b="2"', "give one matcher per list item"),
        ('{a="1"}', "expected label name"),
        ("alertname='x'", "expected value"),
        (r'a="\q"', "unknown escape \\q"),
        (r'a="\x4"', "bad escape"),
        (r'a="\400"', "bad escape"),
        (r'a="\ud800"', "not a Unicode character"),
        (r'a="\xff"', "not valid UTF-8"),
        ('a="line\nbreak"', "newline in quoted string"),
        ('a=~"("', "invalid regex '('"),
        ('a=~"[[:alpha:]]+"', "POSIX classes"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"invalid matcher|invalid regex|unsupported regex|label name") as info:
        parse_matcher(text)
    assert message in str(info.value)


def test_error_names_the_text_and_column() -> None:
    with pytest.raises(ValueError, match=r"""invalid matcher 'alertname="x" junk': .* \(column 15\)"""):
        parse_matcher('alertname="x" junk')


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('alertname="NodeDown"', True),
        ('alertname="nodedown"', False),  # case-sensitive
        ('alertname!="NodeDown"', False),
        ('alertname!="Other"', True),
        ('severity=~"critical|warning"', True),
        ('severity=~"crit"', False),  # anchored at the end
        ('severity=~"ritical"', False),  # anchored at the start
        ('severity=~"crit.*"', True),
        ('severity=~"a|critical"', True),  # the alternation is grouped before anchoring
        ('severity!~"critical|warning"', False),
        ('severity!~"info"', True),
        ('instance=~"node-\\\\d+:9100"', True),
        ('"my label"="x"', True),
        # A missing label is the empty string.
        ('absent=""', True),
        ('absent!=""', False),
        ('absent=~""', True),
        ('absent=~".*"', True),
        ('absent=~".+"', False),
        ('absent!~".+"', True),
        ('absent!="x"', True),
        ('absent="x"', False),
        ('empty=""', True),
        ('instance!=""', True),
        ('severity=~"(?i)CRITICAL"', True),  # a leading flag group, as RE2 allows
    ],
)
def test_matches(text: str, expected: bool) -> None:
    assert parse_matcher(text).matches(LABELS) is expected


def test_regex_is_anchored_against_trailing_newline() -> None:
    # Python's `$` would match before a final newline; the match must cover the whole value.
    assert not Matcher("a", MatchOp.RE, "x").matches({"a": "x\n"})
    assert not Matcher("a", MatchOp.RE, "x.").matches({"a": "x\n"})  # `.` does not match a newline, as in RE2
    assert Matcher("a", MatchOp.NRE, "x").matches({"a": "x\n"})


def test_shorthand_classes_are_ascii_as_in_re2() -> None:
    assert not Matcher("a", MatchOp.RE, r"\d+").matches({"a": "٣"})  # Arabic-Indic digit three
    assert Matcher("a", MatchOp.RE, r"\d+").matches({"a": "42"})


def test_regex_is_compiled_once_and_matcher_is_frozen() -> None:
    matcher = Matcher("a", MatchOp.RE, "b+")
    assert matcher._regex is not None and matcher._regex is matcher._regex
    with pytest.raises(AttributeError):
        matcher.value = "c"  # type: ignore[misc]


def test_constructor_checks() -> None:
    assert Matcher("a", "=~", "x").op is MatchOp.RE  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid regex"):
        Matcher("a", MatchOp.NRE, "(")
    with pytest.raises(ValueError):
        Matcher("a", "==", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        Matcher("", MatchOp.EQ, "x")


def test_equal_matchers_are_equal_and_hashable() -> None:
    assert parse_matcher('a=~"x"') == Matcher("a", MatchOp.RE, "x")
    assert len({parse_matcher('a=~"x"'), Matcher("a", MatchOp.RE, "x")}) == 1


@pytest.mark.parametrize(
    "matcher",
    [
        Matcher("alertname", MatchOp.EQ, "NodeDown"),
        Matcher("my label", MatchOp.NE, 'quote " and \\ backslash'),
        Matcher("x", MatchOp.RE, "a\nb\t\x00\x7f\u200b😀é"),
        Matcher("ключ", MatchOp.NRE, ""),
    ],
)
def test_str_round_trips(matcher: Matcher) -> None:
    assert parse_matcher(str(matcher)) == matcher


def test_str_is_prometheus_style() -> None:
    assert str(Matcher("alertname", MatchOp.EQ, "NodeDown")) == 'alertname="NodeDown"'
    assert str(Matcher("my label", MatchOp.RE, 'a"b')) == '"my label"=~"a\\"b"'


def test_quote_and_label_set_text() -> None:
    assert quote('a"b\\c\nd\x01') == '"a\\"b\\\\c\\nd\\x01"'
    assert format_name("job") == "job"
    assert format_name("1job") == '"1job"'
    assert format_name("app.kubernetes.io/name") == '"app.kubernetes.io/name"'
    assert format_labels([("cluster", "c1"), ("my label", "")]) == '{cluster="c1", "my label"=""}'
    assert format_labels([]) == "{}"
