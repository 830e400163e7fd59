"""Sandboxed Jinja2 templates: native values, filters, strictness, sandbox escapes, analysis."""

from __future__ import annotations

import contextlib
import json

import pytest

from rollout_yaml.expr.templates import (
    MAX_OUTPUT_CHARS,
    Params,
    RenderError,
    Template,
    TemplateCompiler,
    TemplateProblem,
)
from rollout_yaml.expr.values import compile_tree, render_tree


@pytest.fixture(scope="module")
def compiler() -> TemplateCompiler:
    return TemplateCompiler()


def render(compiler: TemplateCompiler, source: str, **context: object) -> object:
    return compiler.compile(source).render(context)


PAYLOAD = {
    "order": {
        "id": 478,
        "number": "478",
        "total": 1234.5,
        "paid": True,
        "note": None,
        "tags": ["vip", "gift"],
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "created_at": "2024-01-02T03:04:05Z",
    }
}


# -- native values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected", "kind"),
    [
        ("{{ payload.order.id }}", 478, int),
        ("{{ payload.order.total }}", 1234.5, float),
        ("{{ payload.order.tags }}", ["vip", "gift"], list),
        ("{{ payload.order.customer }}", {"name": "Ada", "email": "ada@example.com"}, dict),
        ("{{ payload.order.paid }}", True, bool),
        ("{{ payload.order.note }}", None, type(None)),
        ("  {{ payload.order.id }}  ", 478, int),
        ("{{ payload.order.id }}\n", 478, int),
        ("{{ payload.order.id + 1 }}", 479, int),
        ("{{ payload.order.tags | length }}", 2, int),
    ],
)
def test_single_expression_renders_native_value(compiler, source, expected, kind):
    template = compiler.compile(source)
    value = template.render({"payload": PAYLOAD})
    assert template.native is True
    assert type(value) is kind
    assert value == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Order {{ payload.order.id }}", "Order 478"),
        ("{{ payload.order.id }}{{ payload.order.id }}", "478478"),
        ("{{ payload.order.id }} {{ payload.order.paid }}", "478 True"),
        ("#{{ payload.order.id }}", "#478"),
        ("{% if payload.order.paid %}paid{% endif %}", "paid"),
        ("{{ payload.order.tags | join(', ') }}!", "vip, gift!"),
    ],
)
def test_mixed_text_renders_a_string(compiler, source, expected):
    template = compiler.compile(source)
    assert template.native is False
    assert render(compiler, source, payload=PAYLOAD) == expected


def test_numeric_string_stays_a_string_unless_int_filter(compiler):
    assert render(compiler, "{{ payload.order.number }}", payload=PAYLOAD) == "478"
    assert isinstance(render(compiler, "{{ payload.order.number }}", payload=PAYLOAD), str)
    as_int = render(compiler, "{{ payload.order.number | int }}", payload=PAYLOAD)
    assert as_int == 478 and isinstance(as_int, int)
    # a string value that looks like JSON is not decoded either
    assert render(compiler, "{{ v }}", v='{"a": 1}') == '{"a": 1}'
    assert render(compiler, "{{ v }}", v="true") == "true"
    assert render(compiler, "{{ v }}", v="null") == "null"


def test_literal_string_never_touches_jinja(compiler):
    template = compiler.compile("plain {text} with } braces")
    assert template.is_literal
    assert template.names == frozenset()
    assert template.render({}) == "plain {text} with } braces"


def test_identical_sources_share_one_compiled_template(compiler):
    assert compiler.compile("{{ a }}") is compiler.compile("{{ a }}")
    assert compiler.compile("{{ a }}", path=True) is not compiler.compile("{{ a }}")


# -- payload values are data -----------------------------------------------------------------


@pytest.mark.parametrize(
    "hostile",
    [
        "{{ 7*7 }}",
        "{% for x in y %}{% endfor %}",
        "{{ ''.__class__.__mro__ }}",
        "${HOME}",
        "{# comment #}",
    ],
)
def test_payload_values_that_look_like_templates_are_sent_verbatim(compiler, hostile):
    payload = {"text": hostile, "nested": {"list": [hostile]}}
    assert render(compiler, "{{ payload.text }}", payload=payload) == hostile
    assert render(compiler, "Said: {{ payload.text }}", payload=payload) == f"Said: {hostile}"
    assert render(compiler, "{{ payload.nested }}", payload=payload) == {"list": [hostile]}
    assert render(compiler, "{{ payload | tojson }}", payload=payload) == json.dumps(
        payload, separators=(",", ":")
    )


def test_value_tree_renders_each_string_once(compiler):
    errors: list[object] = []
    tree = compile_tree(
        {"title": "Hi {{ payload.text }}", "body": "{{ payload.text }}", "n": 3, "lit": "{x}"},
        compiler,
        lambda path, exc: errors.append((path, exc)),
    )
    assert errors == []
    out = render_tree(tree, {"payload": {"text": "{{ 7*7 }}"}})
    assert out == {"title": "Hi {{ 7*7 }}", "body": "{{ 7*7 }}", "n": 3, "lit": "{x}"}
    # rendering the output again would evaluate it; rendering the tree twice must not
    assert render_tree(tree, {"payload": {"text": "{{ 7*7 }}"}}) == out


def test_value_tree_drop_null_leaves_out_keys(compiler):
    tree = compile_tree(
        {"a": "{{ p.a }}", "b": "{{ p.b }}", "c": ["{{ p.b }}"]},
        compiler,
        lambda path, exc: pytest.fail(f"{path}: {exc}"),
    )
    ctx = {"p": {"a": 1, "b": None}}
    assert render_tree(tree, ctx, drop_null=True) == {"a": 1, "c": [None]}
    assert render_tree(tree, ctx) == {"a": 1, "b": None, "c": [None]}


def test_value_tree_reports_bad_templates_with_their_path(compiler):
    errors: list[tuple[object, Exception]] = []
    compile_tree(
        {"ok": "{{ a }}", "deep": [{"bad": "{{ a. }}"}], "evil": "{{ a.__class__ }}"},
        compiler,
        lambda path, exc: errors.append((path, exc)),
    )
    found = {path: getattr(exc, "code", None) for path, exc in errors}
    assert found == {("deep", 0, "bad"): "RY301", ("evil",): "RY303"}


# -- StrictUndefined -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ("{{ payload.order.missing }}", "missing"),
        ("Total: {{ payload.order.missing }}", "missing"),
        ("{{ payload.order.missing.deeper }}", "missing"),
        ("{{ payload.nope.customer.name }}", "nope"),
        ("{{ payload.order['missing'] }}", "missing"),
        ("{{ payload.order.missing | upper }}", "missing"),
        ("{% if payload.order.missing > 3 %}x{% endif %}", "missing"),
    ],
)
def test_missing_field_raises_render_error_naming_it(compiler, source, field):
    with pytest.raises(RenderError) as info:
        render(compiler, source, payload=PAYLOAD)
    assert f"`{field}`" in str(info.value)


def test_missing_top_level_name_raises_render_error(compiler):
    with pytest.raises(RenderError, match="`payload`"):
        render(compiler, "{{ payload.order.id }}")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ payload.order.missing | default('n/a') }}", "n/a"),
        ("{{ payload.order.missing | default(0) }}", 0),
        ("{{ payload.order.missing | default(none) }}", None),
        ("{{ payload.order.missing | default([]) }}", []),
        ("{{ payload.order.missing | d('x') }}", "x"),
        ("Note: {{ payload.order.missing | default('-') }}", "Note: -"),
        ("{{ payload.order.id | default(1) }}", 478),
        # `default` only replaces undefined values, unless told to treat falsy ones too
        ("{{ payload.order.note | default('n/a') }}", None),
        ("{{ payload.order.note | default('n/a', true) }}", "n/a"),
    ],
)
def test_default_filter_avoids_the_error(compiler, source, expected):
    assert render(compiler, source, payload=PAYLOAD) == expected


# -- filters ---------------------------------------------------------------------------------


def test_tojson_is_compact_and_keeps_unicode(compiler):
    out = render(compiler, "{{ v | tojson }}", v={"name": "Zoë", "n": [1, None, True]})
    assert out == '{"name":"Zoë","n":[1,null,true]}'
    assert render(compiler, "{{ none | tojson }}", none=None) == "null"
    assert isinstance(render(compiler, "{{ v | tojson }}", v=5), str)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ payload | jmespath('order.customer.name') }}", "Ada"),
        ("{{ payload | jmespath('order.tags[0]') }}", "vip"),
        ("{{ payload | jmespath('order.tags') }}", ["vip", "gift"]),
        ("{{ payload | jmespath('order.nothing') }}", None),
        ("{{ payload | jmespath('upper(order.customer.name)') }}", "ADA"),
        ("{{ payload | jmespath('length(order.tags)') }}", 2),
        ("Hi {{ payload | jmespath('order.customer.name') }}", "Hi Ada"),
    ],
)
def test_jmespath_filter(compiler, source, expected):
    assert render(compiler, source, payload=PAYLOAD) == expected


def test_jmespath_filter_expression_is_checked_at_compile_time(compiler):
    with pytest.raises(TemplateProblem) as syntax:
        compiler.compile("{{ payload | jmespath('order.[') }}")
    assert syntax.value.code == "RY302"
    with pytest.raises(TemplateProblem) as unknown:
        compiler.compile("{{ payload | jmespath('uper(order.id)') }}")
    assert unknown.value.code == "RY306"
    assert "upper" in str(unknown.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T05:04:05+02:00", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05", "2024-01-02T03:04:05Z"),
        ("2024-01-02", "2024-01-02T00:00:00Z"),
        (1704164645, "2024-01-02T03:04:05Z"),
    ],
)
def test_iso8601_filter(compiler, value, expected):
    assert render(compiler, "{{ v | iso8601 }}", v=value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-02T03:04:05Z", 1704164645),
        ("2024-01-02T05:04:05+02:00", 1704164645),
        ("2024-01-02", 1704153600),
        (1704164645, 1704164645),
    ],
)
def test_unix_filter(compiler, value, expected):
    out = render(compiler, "{{ v | unix }}", v=value)
    assert out == expected and isinstance(out, int)


def test_date_filters_on_garbage_raise_render_error(compiler):
    with pytest.raises(RenderError):
        render(compiler, "{{ v | unix }}", v="last tuesday")
    with pytest.raises(RenderError):
        render(compiler, "{{ v | iso8601 }}", v="not a date")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ v | money('USD') }}", "$1,234.50"),
        ("{{ v | money('usd') }}", "$1,234.50"),
        ("{{ v | money('EUR') }}", "€1,234.50"),
        ("{{ v | money('GBP') }}", "£1,234.50"),
        ("{{ v | money('CHF') }}", "1,234.50 CHF"),
        ("{{ v | money }}", "1,234.50"),
        ("{{ v | money('USD', 0) }}", "$1,234"),
        ("Total {{ v | money('USD') }}", "Total $1,234.50"),
    ],
)
def test_money_filter(compiler, source, expected):
    assert render(compiler, source, v=1234.5) == expected


def test_money_filter_handles_strings_and_refuses_non_numbers(compiler):
    assert render(compiler, "{{ v | money('USD') }}", v="1000000") == "$1,000,000.00"
    with pytest.raises(RenderError, match="not a number"):
        render(compiler, "{{ v | money('USD') }}", v="lots")


def test_unknown_filter_is_a_compile_problem_with_a_suggestion(compiler):
    with pytest.raises(TemplateProblem) as info:
        compiler.compile("{{ payload | tojsn }}")
    assert info.value.code == "RY306"
    assert "tojson" in str(info.value)


@pytest.mark.parametrize("source", ["{{ payload.order.id ", "{% if %}", "{{ a. }}", "{% endfor %}"])
def test_syntax_errors_are_ry301(compiler, source):
    with pytest.raises(TemplateProblem) as info:
        compiler.compile(source)
    assert info.value.code == "RY301"


def test_syntax_error_reports_its_line(compiler):
    with pytest.raises(TemplateProblem) as info:
        compiler.compile("line one\nline two\n{{ a + }}\n")
    assert info.value.line == 3


def test_output_size_is_capped(compiler):
    with pytest.raises(RenderError, match=str(MAX_OUTPUT_CHARS)):
        render(compiler, "{{ 'ab' * n }}", n=MAX_OUTPUT_CHARS)
    with pytest.raises(RenderError, match=str(MAX_OUTPUT_CHARS)):
        render(compiler, "x{{ 'ab' * n }}", n=MAX_OUTPUT_CHARS)


def test_huge_constant_is_a_template_problem_not_a_crash(compiler):
    with pytest.raises(TemplateProblem):
        compiler.compile("{{ 2**100000 }}")


# -- sandbox ---------------------------------------------------------------------------------

SANDBOX_ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ x.__globals__ }}",
    "{{ ''.format }}",
    "{{ 'a'|attr('__class__') }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__ }}",
    "{{ range.__doc__ }}",
    "{% set x = ''.__class__ %}",
    "{{ '{0.__class__}'.format(x) }}",
    "{{ '{0.__class__}'.format_map(x) }}",
    "{{ x['__class__'] }}",
    "{{ x['__init__']['__globals__'] }}",
    "{{ x|attr('format') }}",
    "{{ x.mro() }}",
    "{{ x.gi_frame }}",
    "{{ x.func_globals }}",
    "{% for c in x.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ x._private }}",
    "{{ x|attr(name) }}",
    "{{ x|attr('__cla' ~ 'ss__') }}",
    "text before\n{{ request.application.__globals__ }}",
]


@pytest.mark.parametrize("source", SANDBOX_ESCAPES)
def test_sandbox_escapes_are_refused_at_compile_time(compiler, source):
    with pytest.raises(TemplateProblem) as info:
        compiler.compile(source)
    assert info.value.code == "RY303"


def test_sandbox_refusal_reports_the_line(compiler):
    with pytest.raises(TemplateProblem) as info:
        compiler.compile("one\ntwo\n{{ x.__class__ }}")
    assert info.value.code == "RY303"
    assert info.value.line == 3


UNDEFINED_GLOBALS = [
    "{{ config.items() }}",
    "{{ lipsum }}",
    "{{ range(10) | list }}",
    "{{ cycler }}",
    "{{ joiner() }}",
    "{{ namespace(a=1) }}",
    "{{ dict(a=1) }}",
    "{{ request }}",
    "{{ os }}",
    "{{ __builtins__ }}",
    "Hi {{ config }}",
]


@pytest.mark.parametrize("source", UNDEFINED_GLOBALS)
def test_globals_are_empty_so_names_only_fail_at_render(compiler, source):
    template = compiler.compile(source)
    with pytest.raises(RenderError) as info:
        template.render({"x": {"a": 1}})
    message = str(info.value)
    assert "is missing" in message or "is undefined" in message
    assert "<" not in message and "0x" not in message  # no object reprs leak


def test_a_name_built_in_the_template_is_refused_at_compile_time(compiler):
    with pytest.raises(TemplateProblem) as info:
        compiler.compile("{{ x['__cla' ~ 'ss__'] }}")
    assert info.value.code == "RY303"


def test_an_unsafe_name_read_from_the_data_is_refused_by_the_sandbox_at_render(compiler):
    template = compiler.compile("{{ x[p.key] }}")
    with pytest.raises(RenderError) as info:
        template.render({"x": "text", "p": {"key": "__class__"}})
    assert "unsafe" in str(info.value) or "refused" in str(info.value)


@pytest.mark.parametrize(
    "source",
    [
        "{{ (s | map(attribute='format') | first)(x) }}",
        "Hi {{ (s | map(attribute='format') | first)(x) }}",
        "{{ (m | map(attribute='format_map') | first)({'a': x}) }}",
    ],
)
def test_str_format_reached_indirectly_never_leaks(compiler, source):
    # CVE-2024-56326 shape: a reference to str.format called with a dunder format string
    context = {"s": ["{0.__class__.__mro__}"], "m": ["{a.__class__.__mro__}"], "x": {"a": 1}}
    try:
        template = compiler.compile(source)
    except TemplateProblem as exc:
        assert exc.code == "RY303"
        return
    with pytest.raises(RenderError) as info:
        template.render(context)
    assert "<class" not in str(info.value) and "object at" not in str(info.value)


@pytest.mark.parametrize(
    ("source", "context"),
    [
        ('{{ "%(a)s" | format(b=1) }}', {}),
        ("{{ p.l[5] }}", {"p": {"l": []}}),
        ("{{ p.s | truncate(-1) }}", {"p": {"s": "abc"}}),
    ],
)
def test_every_render_failure_is_a_render_error(compiler, source, context):
    with pytest.raises(RenderError):
        compiler.compile(source).render(context)


def test_calling_a_safe_method_through_map_still_works(compiler):
    template = compiler.compile("{{ (s | map(attribute='upper') | first)() }}")
    assert template.render({"s": ["abc"]}) == "ABC"


@pytest.mark.parametrize(
    "source",
    [
        "{{ x | map(attribute='__class__') | list }}",
        "{{ s | map(attribute='format') | first }}",
    ],
)
def test_attribute_arguments_of_filters_are_checked_like_attr(compiler, source):
    with pytest.raises(TemplateProblem) as info:
        compiler.compile(source)
    assert info.value.code == "RY303"


def test_rendering_never_mutates_the_data(compiler):
    data = {"payload": {"tags": ["a", "b"], "k": 1}}
    for source in ("{{ payload.tags.pop() }}", "{{ payload.clear() }}"):
        with contextlib.suppress(TemplateProblem, RenderError):
            compiler.compile(source).render(data)
    assert data == {"payload": {"tags": ["a", "b"], "k": 1}}


# -- analysis --------------------------------------------------------------------------------


def test_names_are_the_top_level_names_read(compiler):
    template = compiler.compile(
        "{{ payload.a }} {{ params.b }} {% set local = event.id %}{{ local }}"
        "{% for item in payload.items %}{{ item.sku }}{% endfor %}"
    )
    assert template.names == frozenset({"payload", "params", "event"})


def test_loop_variable_is_not_a_read_name(compiler):
    template = compiler.compile("{% for t in input.tags %}{{ loop.index }}={{ t }};{% endfor %}")
    assert template.names == frozenset({"input"})


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ payload.customer.name }}", {("customer", "name")}),
        ("{{ payload['items'][0].sku }}", {("items", 0, "sku")}),
        ("{{ payload.a.b | default(payload.c) }}", {("a", "b"), ("c",)}),
        ("{{ payload.x ~ payload.y.z }}", {("x",), ("y", "z")}),
        ("{% if payload.ok %}{{ payload.msg }}{% endif %}", {("ok",), ("msg",)}),
    ],
)
def test_payload_paths_include_each_full_path(compiler, source, expected):
    paths = set(compiler.compile(source).paths("payload"))
    assert expected <= paths
    # every recorded path is a prefix of a full one: nothing invented
    assert all(any(full[: len(p)] == p for full in expected) for p in paths)


def test_paths_are_per_root(compiler):
    template = compiler.compile("{{ input.x.y }} {{ payload.z }} {{ params.p }}")
    assert ("x", "y") in template.paths("input")
    assert template.paths("payload") == (("z",),)
    assert template.paths("params") == (("p",),)
    assert template.paths("event") == ()


def test_dynamic_keys_and_whole_roots_give_no_paths(compiler):
    assert compiler.compile("{{ payload }}").paths("payload") == ()
    assert compiler.compile("{{ payload[input.k] }}").paths("payload") == ()
    assert compiler.compile("{{ payload | jmespath('a.b') }}").paths("payload") == ()


def test_template_repr_and_source(compiler):
    template = compiler.compile("{{ a }}")
    assert isinstance(template, Template)
    assert template.source == "{{ a }}"
    assert "{{ a }}" in repr(template)


# -- path templates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("a/b", "a%2Fb"),
        ("../../admin", "..%2F..%2Fadmin"),
        ("user@evil.com", "user%40evil.com"),
        ("a?b=1", "a%3Fb%3D1"),
        ("x#frag", "x%23frag"),
        ("%2e%2e", "%252e%252e"),
        ("hello world", "hello%20world"),
        ("a+b", "a%2Bb"),
        ("ü", "%C3%BC"),
        ("a\\b", "a%5Cb"),
        ("http://evil.com", "http%3A%2F%2Fevil.com"),
        (42, "42"),
        ("a.b", "a.b"),
        ("ord_123-x~", "ord_123-x~"),
    ],
)
def test_path_template_encodes_each_expression_as_one_segment(compiler, value, segment):
    template = compiler.compile("/orders/{{ input.id }}/items", path=True)
    assert template.render({"input": {"id": value}}) == f"/orders/{segment}/items"


def test_path_template_is_never_native_and_literal_text_is_kept(compiler):
    template = compiler.compile("{{ input.id }}", path=True)
    assert template.native is False
    assert template.render({"input": {"id": "a/b"}}) == "a%2Fb"
    template = compiler.compile("/v1/a b/{{ input.id }}", path=True)
    assert template.render({"input": {"id": 7}}) == "/v1/a b/7"


def test_path_template_expression_output_cannot_add_segments(compiler):
    template = compiler.compile("/x/{{ input.a ~ '/' ~ input.b }}", path=True)
    assert template.render({"input": {"a": "p", "b": "q"}}) == "/x/p%2Fq"


def test_path_template_missing_field_raises(compiler):
    with pytest.raises(RenderError, match="`id`"):
        compiler.compile("/orders/{{ input.id }}", path=True).render({"input": {}})


PLAIN_LOOKUPS = [
    "{{ params.x }}",
    " {{ params.x.y }} ",
    "{{ params.x | default(none) }}",
    "{{ params.x | default('d') }}",
    "{{ params.x | default('d', true) }}",
    "{{ params.x | default('d', false) }}",
    "{{ payload.items }}",
    "{{ consumer.key }}",
    "{{ params.x | default(params.y) }}",
    "{{ params['x'] }}",
]
LOOKUP_CONTEXTS = [
    {"params": Params({"x": "a", "y": 2}, {"x", "y"}), "consumer": {"key": "c"}},
    {"params": Params({}, {"x"}), "consumer": {}},
    {"params": Params({"x": ""}, {"x"})},
    {"params": Params({"x": 0}, {"x"})},
    {"params": Params({"x": None}, {"x"})},
    {"params": Params({"x": {"y": [1]}}, {"x"})},
    {"params": Params({"x": {"z": 1}}, {"x"})},
    {"params": Params({"x": "s"}, {"x"})},
    {"params": {"x": {"y": False}}, "payload": {"items": [1, 2]}},
    {"params": {}, "payload": []},
    {},
]


@pytest.mark.parametrize("source", PLAIN_LOOKUPS)
def test_plain_lookups_render_as_jinja_does(source):
    compiler = TemplateCompiler()
    template = compiler.compile(source)
    expression = compiler.env.compile_expression(source.strip()[2:-2], undefined_to_none=False)
    reference = Template(
        source, lambda ctx: expression(**ctx), native=True, names=template.names, paths={}
    )
    for ctx in LOOKUP_CONTEXTS:
        outcomes = []
        for candidate in (template, reference):
            try:
                outcomes.append(("ok", candidate.render(ctx)))
            except RenderError as exc:
                outcomes.append(("error", str(exc)))
        assert outcomes[0] == outcomes[1], (source, ctx)
        assert type(outcomes[0][1]) is type(outcomes[1][1])
