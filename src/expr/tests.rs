//! Unit tests of evaluation through the public API: JavaScript, moment, built-ins, scoping.

use super::*;

pub(super) fn ctx_in(tz: &str) -> EvalContext<'static> {
    EvalContext {
        timezone: jiff::tz::TimeZone::get(tz).unwrap(),
        now: "2016-03-13T10:00:00Z".parse().unwrap(),
        secrets: &NoSecrets,
    }
}

struct NoSecrets;
impl SecretProvider for NoSecrets {
    fn secret(&self, _: &str) -> Option<String> {
        None
    }
}

/// Evaluates `${expr}` in UTC with a few params and compares the rendered text.
pub(super) fn check(expr: &str, expected: &str) {
    check_in("UTC", expr, expected);
}

fn check_in(tz: &str, expr: &str, expected: &str) {
    let params: JsonMap = serde_json::from_str(
        r#"{"a": 1, "s": "str", "arr": [1, 2, 3], "obj": {"k": "v", "n": {"x": 5}},
            "session_time": "2016-03-13T10:00:00+00:00", "t": true,
            "tiny": 6.262589054136868e-10}"#,
    )
    .unwrap();
    let mut raw = JsonMap::new();
    raw.insert(
        "out".into(),
        serde_json::Value::String(format!("${{{expr}}}")),
    );
    let layers = [Layer::Plain(&params), Layer::RawJson(&raw)];
    let got = eval_params(&layers, &ctx_in(tz));
    let got = match got {
        Ok(e) => e.params["out"].as_str().unwrap().to_string(),
        Err(e) => format!("error: {e}"),
    };
    assert_eq!(got, expected, "`${{{expr}}}`");
}

#[test]
fn literals() {
    check("1", "1");
    check("0.2", "0.2");
    check("'a\\tb'", "a\tb");
    check("[1, 'x', null]", "[1,\"x\",null]");
    check("{a: 1, 'b': [true]}", "{\"a\":1,\"b\":[true]}");
    check("null", "");
    check("undefined", "");
    check("true", "true");
    check("1e21", "1e+21");
}

#[test]
fn arithmetic_and_coercions() {
    check("1 + 2 * 3", "7");
    check("'a' + 1", "a1");
    check("'3' * 2", "6");
    check("'3' - '1'", "2");
    check("1 / 0", "null"); // JSON.stringify(Infinity)
    check("String(1 / 0)", "Infinity");
    check("7 % 3", "1");
    check("-a", "-1");
    check("+'42'", "42");
    check("[1] + [2]", "12");
    check("{} + ''", "[object Object]");
    check("0.1 + 0.2", "0.30000000000000004");
    check("a++ + a", "3");
    check("5 & 3 | 8", "9");
    check("-1 >>> 28", "15");
    check("1 << 4", "16");
}

#[test]
fn comparison_and_equality() {
    check("1 == '1'", "true");
    check("1 === '1'", "false");
    check("null == undefined", "true");
    check("null === undefined", "false");
    check("0 == false", "true");
    check("'' == 0", "true");
    check("NaN == NaN", "false");
    check("'b' > 'a'", "true");
    check("'10' < '9'", "true");
    check("10 < 9", "false");
    check("'10' < 9", "false");
    check("a != 2", "true");
    check("s !== 'str'", "false");
    check("[1] == 1", "true");
}

#[test]
fn logical_operators_short_circuit_with_values() {
    check("0 || 'x'", "x");
    check("'' && 'x'", "");
    check("1 && 'y'", "y");
    check("!!s", "true");
    check("!0", "true");
    check("false || nope_is_not_evaluated_when || 1", "error: failed to evaluate `${false || nope_is_not_evaluated_when || 1}`: ReferenceError: \"nope_is_not_evaluated_when\" is not defined");
    check("true || nope", "true");
    check("a > 0 ? 'pos' : 'neg'", "pos");
}

#[test]
fn typeof_in_and_member_access() {
    check("typeof a", "number");
    check("typeof s", "string");
    check("typeof missing", "undefined");
    check("typeof missing == 'undefined' ? '' : missing", "");
    check("typeof obj", "object");
    check("typeof null", "object");
    check("typeof moment", "function");
    check("typeof function(){}", "function");
    check("'k' in obj", "true");
    check("'z' in obj", "false");
    check("obj.k", "v");
    check("obj.n.x", "5");
    check("obj['k']", "v");
    check("obj.missing", "");
    check("arr[1]", "2");
    check("arr.length", "3");
    check("s.length", "3");
    check("this['s']", "str");
    check(
        "obj.missing.deeper",
        "error: failed to evaluate `${obj.missing.deeper}`: TypeError: Cannot read property \"deeper\" from undefined",
    );
    check(
        "nope",
        "error: failed to evaluate `${nope}`: ReferenceError: \"nope\" is not defined",
    );
}

#[test]
fn functions_and_statements() {
    check("arr.map(function(x){return x*5})", "[5,10,15]");
    check("arr.filter(function(x){ return x % 2 == 1; })", "[1,3]");
    check(
        "(function(){ var t = 0; for (var i = 0; i < 5; i++) { if (i == 3) continue; t += i; } return t; })()",
        "7",
    );
    check(
        "(function(n){ var r = 1; while (n > 1) { r *= n; n--; } return r })(5)",
        "120",
    );
    check(
        "(function f(n){ return n <= 1 ? 1 : n * f(n - 1) })(10)",
        "3628800",
    );
    check(
        "(function(){ var o = {a: 1, b: 2}, ks = []; for (var k in o) ks.push(k); return ks.join('-') })()",
        "a-b",
    );
    check(
        "(function(){ var i = 0; do { i++ } while (i < 3); return i })()",
        "3",
    );
    check(
        "(function(){ for (var i = 0; ; i++) { if (i > 4) break; } return i })()",
        "5",
    );
    check(
        "(function(){ function add(a, b) { return a + b } return add(2, 3) })()",
        "5",
    );
    check(
        "(function(){ var x = 1; if (x > 1) { return 'a' } else { return 'b' } })()",
        "b",
    );
    check("(function(){ return arguments.length })(1, 2)", "2");
    check("arr.reduce(function(a, b){ return a + b }, 10)", "16");
    check("arr.reduce(function(a, b){ return a + b })", "6");
}

#[test]
fn string_methods() {
    check("'hello'.slice(1, -1)", "ell");
    check("'hello'.slice(-3)", "llo");
    check("'hello'.substring(3, 1)", "el");
    check("'hello'.substr(1, 3)", "ell");
    check("'a-b-c'.replace('-', '+')", "a+b-c");
    check("'a-b-c'.replace(/-/g, '+')", "a+b+c");
    check(
        "'john smith'.replace(/(\\w+)\\s(\\w+)/, '$2, $1')",
        "smith, john",
    );
    check("'aaa'.replaceAll('a', 'A')", "AAA");
    check("'a1b22'.replaceAll('[0-9]+', '#')", "a#b#");
    check("'a,b,,c'.split(',')", "[\"a\",\"b\",\"\",\"c\"]");
    check("'abc'.split('')", "[\"a\",\"b\",\"c\"]");
    check("'a1b2c'.split(/[0-9]/)", "[\"a\",\"b\",\"c\"]");
    check("'a,b,c'.split(',', 2)", "[\"a\",\"b\"]");
    check("['x', 'y'].join('+')", "x+y");
    check(
        "'MiXeD'.toUpperCase() + 'MiXeD'.toLowerCase()",
        "MIXEDmixed",
    );
    check("'  t  '.trim()", "t");
    check("'banana'.indexOf('an')", "1");
    check("'banana'.indexOf('an', 2)", "3");
    check("'banana'.lastIndexOf('an')", "3");
    check("'banana'.indexOf('x')", "-1");
    check("'abc'.charAt(1)", "b");
    check("'abc'.charCodeAt(0)", "97");
    check("'abc'.startsWith('ab') && 'abc'.endsWith('bc')", "true");
    check("'a'.concat('b', 1)", "ab1");
    check("'5'.padStart(3, '0')", "005");
    check("'5'.padEnd(3)", "5  ");
    check("'ab'.repeat(3)", "ababab");
    check("'x=1'.match(/x=(\\d)/)[1]", "1");
    check("/^a+$/.test('aaa')", "true");
    check("new RegExp('B', 'i').test('abc')", "true");
    check("'ABC'.search(/C/)", "2");
    check("'é€'.length", "2");
}

#[test]
fn number_methods_and_globals() {
    check("(255).toString(16)", "ff");
    check("(255).toString(2)", "11111111");
    check("(5).toString()", "5");
    check("(1.005).toFixed(2)", "1.00");
    check("(1.5).toFixed(0)", "2");
    check("(2.5).toFixed(0)", "3");
    check("(1234.5678).toFixed(2)", "1234.57");
    check("(0).toFixed(2)", "0.00");
    check("parseInt('42px')", "42");
    check("parseInt('ff', 16)", "255");
    check("parseInt('0x1A')", "26");
    check("parseInt('x')", "null");
    check("isNaN(parseInt('x'))", "true");
    check("parseFloat('3.14abc')", "3.14");
    check("parseFloat('.5')", "0.5");
    check("String(12) + Number('3')", "123");
    check("Number('')", "0");
    check("isNaN(Number('x'))", "true");
    check("encodeURIComponent('a b&c/d')", "a%20b%26c%2Fd");
    check("decodeURIComponent('a%20b')", "a b");
    check("Boolean('')", "false");
    check("Array.isArray(arr)", "true");
    // digdag.js's template is one `__p += ...` statement, so what `print` appends is lost.
    check("print('a', 1), 'b'", "b");
    check("Object.keys(obj)", "[\"k\",\"n\"]");
    check(
        "print(nope)",
        "error: failed to evaluate `${print(nope)}`: ReferenceError: \"nope\" is not defined",
    );
}

#[test]
fn math() {
    check("Math.floor(1.7) + Math.ceil(1.2)", "3");
    check("Math.round(2.5)", "3");
    check("Math.round(-2.5)", "-2");
    check("Math.abs(-3)", "3");
    check("Math.min(3, 1, 2)", "1");
    check("Math.max(3, 1, 2)", "3");
    check("Math.max()", "null");
    check("Math.pow(2, 10)", "1024");
    check("Math.sqrt(16)", "4");
    check("Math.PI > 3.14", "true");
    check(
        "(function(){ var r = Math.random(); return r >= 0 && r < 1 })()",
        "true",
    );
}

#[test]
fn arrays() {
    check("[3, 1, 2].sort()", "[1,2,3]");
    check("[10, 9, 1].sort()", "[1,10,9]");
    check(
        "[10, 9, 1].sort(function(a, b){ return a - b })",
        "[1,9,10]",
    );
    check("[1, 2, 3].reverse()", "[3,2,1]");
    check("arr.slice(1)", "[2,3]");
    check("arr.slice(-2, -1)", "[2]");
    check("arr.indexOf(2)", "1");
    check("arr.indexOf('2')", "-1");
    check("arr.concat([4], 5)", "[1,2,3,4,5]");
    check(
        "(function(){ var x = [1]; x.push(2, 3); return x })()",
        "[1,2,3]",
    );
    check(
        "(function(){ var x = [1, 2]; return x.pop() + x.length })()",
        "3",
    );
    check(
        "(function(){ var t = []; arr.forEach(function(v, i){ t.push(v * i) }); return t })()",
        "[0,2,6]",
    );
    check("arr.some(function(v){ return v > 2 })", "true");
    check("arr.every(function(v){ return v > 2 })", "false");
    check("[1, [2, 3]].join(';')", "1;2,3");
    check("[null, undefined, 1].join()", ",,1");
    check("String([1, [2, 3]])", "1,2,3");
}

#[test]
fn json_functions() {
    check(
        "JSON.stringify({a: [1, 'b', null, undefined], c: undefined})",
        "{\"a\":[1,\"b\",null,null]}",
    );
    check("JSON.stringify('q\"\\n')", "\"q\\\"\\n\"");
    check("JSON.stringify({a: 1}, null, 2)", "{\n  \"a\": 1\n}");
    check("JSON.parse('{\"x\": [1, 2]}').x[1]", "2");
    check("JSON.parse('{\"query\": \"q\"}')['query']", "q");
    check("obj", "{\"k\":\"v\",\"n\":{\"x\":5}}");
    check("arr", "[1,2,3]");
    check("JSON.parse('nope')", "error: failed to evaluate `${JSON.parse('nope')}`: SyntaxError: JSON.parse: expected ident at line 1 column 2");
}

#[test]
fn dates() {
    check("Date.now()", "1457863200000");
    check("new Date().getTime()", "1457863200000");
    check("new Date(0).toISOString()", "1970-01-01T00:00:00.000Z");
    check(
        "new Date('2016-03-13T10:00:00Z').getTime()",
        "1457863200000",
    );
    // A placeholder renders a Date through JSON.stringify: its toJSON() in quotes.
    check("new Date(86400000)", "\"1970-01-02T00:00:00.000Z\"");
    check("new Date(0).getUTCFullYear()", "1970");
    check_in("Asia/Tokyo", "new Date(0).getHours()", "9");
    check_in(
        "Asia/Tokyo",
        "String(new Date(0))",
        "Thu Jan 01 1970 09:00:00 GMT+0900",
    );
}

#[test]
fn runaway_expression_is_stopped_within_a_second() {
    let started = std::time::Instant::now();
    let mut raw = JsonMap::new();
    raw.insert(
        "x".into(),
        serde_json::Value::String("${while(true){}}".into()),
    );
    let err = eval_params(&[Layer::RawJson(&raw)], &ctx_in("UTC")).unwrap_err();
    assert!(err.to_string().contains("stopped"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn sandbox_limits_recursion_and_sizes() {
    check(
        "(function f(){ return f() })()",
        "error: failed to evaluate `${(function f(){ return f() })()}`: RangeError: maximum call depth of 64 exceeded",
    );
    check(
        "'x'.repeat(100000000)",
        "error: failed to evaluate `${'x'.repeat(100000000)}`: RangeError: Invalid count value",
    );
    check(
        "new Array(100000000)",
        "error: failed to evaluate `${new Array(100000000)}`: RangeError: array longer than 1048576 elements",
    );
    check(
        "(function(){ var s = 'xxxxxxxxxxxxxxxx'; while (true) { s = s + s } })()",
        "error: failed to evaluate `${(function(){ var s = 'xxxxxxxxxxxxxxxx'; while (true) { s = s + s } })()}`: RangeError: string longer than 8388608 bytes",
    );
}

#[test]
fn allocation_budget_stops_memory_hungry_loops() {
    let expr = "(function(){ var s = 'x'.repeat(8000000), a = []; while (true) { a.push(s + a.length) } })()";
    check(
        expr,
        &format!("error: failed to evaluate `${{{expr}}}`: RangeError: expression allocated more than 256 MiB"),
    );
    let expr = "(function(){ var o = {}; for (var i = 0; ; i++) { o['k' + i] = i } })()";
    let mut raw = JsonMap::new();
    raw.insert(
        "x".into(),
        serde_json::Value::String(format!("${{{expr}}}")),
    );
    let err = eval_params(&[Layer::RawJson(&raw)], &ctx_in("UTC")).unwrap_err();
    // Either bound may trip first, depending on the machine's speed.
    assert!(
        err.to_string().contains("allocated more than") || err.to_string().contains("stopped"),
        "{err}"
    );
}

#[test]
fn a_param_is_one_object_within_an_expression() {
    check("(function(){ arr.push(4); return arr.length })()", "4");
    check("arr.length", "3");
}

#[test]
fn syntax_errors_name_the_problem() {
    check(
        "1 +",
        "error: failed to evaluate `${1 +}`: syntax error at offset 3: expected an expression, found end of expression",
    );
    check(
        "let x = 1",
        "error: failed to evaluate `${let x = 1}`: syntax error at offset 0: expected an expression, found `let`",
    );
}

/// `moment(session_time)` with session_time = 2016-03-13T10:00:00Z (a Sunday).
fn check_m(tz: &str, chain: &str, expected: &str) {
    check_in(tz, &format!("moment(session_time){chain}"), expected);
}

#[test]
fn moment_format_tokens() {
    for (fmt, out) in [
        ("YYYY YY", "2016 16"),
        ("M MM MMM MMMM Mo", "3 03 Mar March 3rd"),
        ("D DD Do DDD DDDD DDDo", "13 13 13th 73 073 73rd"),
        ("d dd ddd dddd do", "0 Su Sun Sunday 0th"),
        ("H HH h hh k kk", "10 10 10 10 10 10"),
        ("m mm s ss S SS SSS", "0 00 0 00 0 00 000"),
        ("a A", "am AM"),
        ("Z ZZ", "+00:00 +0000"),
        ("X x", "1457863200 1457863200000"),
        ("w ww W WW", "12 12 10 10"),
        ("Q E e gggg GGGG", "1 7 0 2016 2016"),
        ("[Today is] dddd", "Today is Sunday"),
        ("LT LTS", "10:00 AM 10:00:00 AM"),
        ("L LL", "03/13/2016 March 13, 2016"),
        ("LLL", "March 13, 2016 10:00 AM"),
        ("LLLL", "Sunday, March 13, 2016 10:00 AM"),
        ("l ll", "3/13/2016 Mar 13, 2016"),
        ("lll", "Mar 13, 2016 10:00 AM"),
        ("llll", "Sun, Mar 13, 2016 10:00 AM"),
    ] {
        check_m("UTC", &format!(".format('{fmt}')"), out);
    }
    check_m("UTC", ".format()", "2016-03-13T10:00:00+00:00");
    check_m("UTC", ".utc().format()", "2016-03-13T10:00:00Z");
    check_m("UTC", ".hour(0).format('h hh k a')", "12 12 24 am");
    check_m("UTC", ".hour(13).format('h A')", "1 PM");
    check_m(
        "UTC",
        ".millisecond(7).format('S SS SSS SSSS')",
        "0 00 007 0070",
    );
    check_m("Asia/Kolkata", ".format('Z ZZ')", "+05:30 +0530");
    check_in(
        "UTC",
        "moment('2016-01-01').format('ww gggg W GGGG')",
        "01 2016 53 2015",
    );
    check_in("UTC", "moment('2016-12-31').format('Do DDD')", "31st 366");
    check_in("UTC", "moment('2016-03-22').format('Do')", "22nd");
    check_in("UTC", "moment('2016-03-11').format('Do')", "11th");
    check_in("UTC", "moment('nonsense').format()", "Invalid date");
    check_in("UTC", "moment('nonsense').isValid()", "false");
}

#[test]
fn moment_add_subtract_units_and_aliases() {
    for (unit, out) in [
        ("years", "2017-03-13T10:00:00+00:00"),
        ("y", "2017-03-13T10:00:00+00:00"),
        ("quarters", "2016-06-13T10:00:00+00:00"),
        ("Q", "2016-06-13T10:00:00+00:00"),
        ("months", "2016-04-13T10:00:00+00:00"),
        ("M", "2016-04-13T10:00:00+00:00"),
        ("weeks", "2016-03-20T10:00:00+00:00"),
        ("w", "2016-03-20T10:00:00+00:00"),
        ("days", "2016-03-14T10:00:00+00:00"),
        ("day", "2016-03-14T10:00:00+00:00"),
        ("d", "2016-03-14T10:00:00+00:00"),
        ("hours", "2016-03-13T11:00:00+00:00"),
        ("h", "2016-03-13T11:00:00+00:00"),
        ("minutes", "2016-03-13T10:01:00+00:00"),
        ("m", "2016-03-13T10:01:00+00:00"),
        ("seconds", "2016-03-13T10:00:01+00:00"),
        ("s", "2016-03-13T10:00:01+00:00"),
    ] {
        check_m("UTC", &format!(".add(1, '{unit}').format()"), out);
    }
    check_m("UTC", ".add(1500, 'ms').format('ss.SSS')", "01.500");
    check_m("UTC", ".add(1, 'milliseconds').valueOf()", "1457863200001");
    check_m(
        "UTC",
        ".subtract(2, 'days').format('YYYY-MM-DD')",
        "2016-03-11",
    );
    check_m("UTC", ".add('3', 'hours').format('HH')", "13");
    check_m(
        "UTC",
        ".add({days: 1, hours: 2}).format()",
        "2016-03-14T12:00:00+00:00",
    );
    check_in(
        "UTC",
        "moment('2016-01-31').add(1, 'months').format('YYYY-MM-DD')",
        "2016-02-29",
    );
    check_in(
        "UTC",
        "moment('2016-02-29').add(1, 'years').format('YYYY-MM-DD')",
        "2017-02-28",
    );
    check_in(
        "UTC",
        "moment('2016-03-31').subtract(1, 'M').format('YYYY-MM-DD')",
        "2016-02-29",
    );
    // JSON.stringify of a moment, as digdag.js renders it: quoted.
    check_m("UTC", ".add(1, 'days')", "\"2016-03-14T10:00:00.000Z\"");
    // moment 2.21 ignores a unit it does not know.
    check_m(
        "UTC",
        ".add(1, 'fortnights').format()",
        "2016-03-13T10:00:00+00:00",
    );
}

#[test]
fn moment_start_end_of() {
    for (unit, start, end) in [
        ("year", "2016-01-01 00:00:00.000", "2016-12-31 23:59:59.999"),
        (
            "quarter",
            "2016-01-01 00:00:00.000",
            "2016-03-31 23:59:59.999",
        ),
        (
            "month",
            "2016-03-01 00:00:00.000",
            "2016-03-31 23:59:59.999",
        ),
        ("week", "2016-03-13 00:00:00.000", "2016-03-19 23:59:59.999"),
        (
            "isoWeek",
            "2016-03-07 00:00:00.000",
            "2016-03-13 23:59:59.999",
        ),
        ("day", "2016-03-13 00:00:00.000", "2016-03-13 23:59:59.999"),
        ("hour", "2016-03-13 10:00:00.000", "2016-03-13 10:59:59.999"),
        (
            "minute",
            "2016-03-13 10:00:00.000",
            "2016-03-13 10:00:59.999",
        ),
    ] {
        let f = "'YYYY-MM-DD HH:mm:ss.SSS'";
        check_m("UTC", &format!(".startOf('{unit}').format({f})"), start);
        check_m("UTC", &format!(".endOf('{unit}').format({f})"), end);
    }
}

#[test]
fn moment_getters_setters_and_queries() {
    check_m("UTC", ".year()", "2016");
    check_m("UTC", ".month()", "2");
    check_m("UTC", ".date()", "13");
    check_m("UTC", ".day()", "0");
    check_m("UTC", ".hour()", "10");
    check_m("UTC", ".minute() + moment(session_time).second()", "0");
    check_m("UTC", ".millisecond()", "0");
    check_m("UTC", ".dayOfYear()", "73");
    check_m("UTC", ".week()", "12");
    check_m("UTC", ".isoWeek()", "10");
    check_m("UTC", ".isoWeekday()", "7");
    check_m("UTC", ".weekday()", "0");
    check_m("UTC", ".daysInMonth()", "31");
    check_in("UTC", "moment('2016-02-10').daysInMonth()", "29");
    check_m(
        "UTC",
        ".year(2020).month(1).date(29).format('YYYY-MM-DD')",
        "2020-02-29",
    );
    check_m("UTC", ".hour(25).format('YYYY-MM-DD HH')", "2016-03-14 01");
    check_m("UTC", ".day(3).format('YYYY-MM-DD')", "2016-03-16");
    check_m("UTC", ".isoWeekday(1).format('YYYY-MM-DD')", "2016-03-07");
    check_m("UTC", ".unix()", "1457863200");
    check_m("UTC", ".valueOf() / 1000", "1457863200");
    check_m("UTC", ".toISOString()", "2016-03-13T10:00:00.000Z");
    check_m("UTC", ".toJSON()", "2016-03-13T10:00:00.000Z");
    check_m(
        "America/Los_Angeles",
        ".toString()",
        "Sun Mar 13 2016 03:00:00 GMT-0700",
    );
    check_m("UTC", ".isValid()", "true");
    check_in("UTC", "(function(){ var a = moment(session_time); var b = a.clone().add(1, 'd'); return a.date() + ' ' + b.date() })()", "13 14");
    check_in(
        "UTC",
        "(function(){ var a = moment(session_time); a.add(1, 'd'); return a.date() })()",
        "14",
    );
    check_m("UTC", ".isBefore('2016-03-14')", "true");
    check_m("UTC", ".isAfter('2016-03-14')", "false");
    check_m("UTC", ".isSame('2016-03-13', 'day')", "true");
    check_m("UTC", ".isSame('2016-03-13')", "false");
    check_m("UTC", ".isSameOrBefore(session_time)", "true");
    check_m("UTC", ".isSameOrAfter('2016-03-14')", "false");
    check_m("UTC", ".diff('2016-03-10', 'days')", "3");
    check_m("UTC", ".diff('2016-03-10T22:00:00Z', 'days')", "2");
    check_m("UTC", ".diff('2016-03-10T22:00:00Z', 'days', true)", "2.5");
    check_m("UTC", ".diff('2016-01-13T10:00:00Z', 'months')", "2");
    check_m("UTC", ".diff('2015-03-13T10:00:00Z', 'years')", "1");
    check_m("UTC", ".diff('2016-03-13T09:00:00Z')", "3600000");
    check_m("UTC", ".diff('2016-03-13T09:00:00Z', 'hours')", "1");
    check_in(
        "America/Los_Angeles",
        "moment('2016-03-14').diff('2016-03-13', 'days')",
        "1",
    );
    check_in(
        "America/Los_Angeles",
        "moment('2016-03-14').diff('2016-03-13', 'hours')",
        "23",
    );
}

#[test]
fn moment_parsing_and_constructors() {
    check_in("UTC", "moment(0).format()", "1970-01-01T00:00:00+00:00");
    check_in(
        "UTC",
        "moment.unix(86400).format()",
        "1970-01-02T00:00:00+00:00",
    );
    check_in("UTC", "moment().format()", "2016-03-13T10:00:00+00:00");
    check_in(
        "Asia/Tokyo",
        "moment('2016-03-13 10:00:00').format()",
        "2016-03-13T10:00:00+09:00",
    );
    check_in(
        "Asia/Tokyo",
        "moment.utc('2016-03-13 10:00:00').format()",
        "2016-03-13T10:00:00Z",
    );
    check_in(
        "Asia/Tokyo",
        "moment('2016-03-13T10:00:00+01:00').format()",
        "2016-03-13T18:00:00+09:00",
    );
    check_in(
        "UTC",
        "moment('20160313').format('YYYY-MM-DD')",
        "2016-03-13",
    );
    check_in(
        "UTC",
        "moment('2016-03-13T10:20:30.5Z').format('HH:mm:ss.SSS')",
        "10:20:30.500",
    );
    check_in(
        "UTC",
        "moment('13/03/2016 07:05 pm', 'DD/MM/YYYY hh:mm a').format()",
        "2016-03-13T19:05:00+00:00",
    );
    check_in(
        "UTC",
        "moment([2016, 2, 13]).format('YYYY-MM-DD')",
        "2016-03-13",
    );
    check_in("UTC", "moment(new Date(0)).valueOf()", "0");
    check_in(
        "Asia/Tokyo",
        "moment('20160313', 'YYYYMMDD').format()",
        "2016-03-13T00:00:00+09:00",
    );
    check_in(
        "UTC",
        "moment('13 Mar 2016', 'DD MMM YYYY').format('YYYY-MM-DD')",
        "2016-03-13",
    );
    check_in(
        "UTC",
        "moment('2016-03-13 10:00 +0900', 'YYYY-MM-DD HH:mm Z').format()",
        "2016-03-13T01:00:00+00:00",
    );
    check_in(
        "UTC",
        "moment('1457863200', 'X').format()",
        "2016-03-13T10:00:00+00:00",
    );
    check_in(
        "UTC",
        "moment('03-20', 'MM-DD').format('YYYY-MM-DD')",
        "2016-03-20",
    );
    check_in(
        "UTC",
        "moment('Sun, 13 Mar 2016 10:00:00 +0900').format()",
        "2016-03-13T01:00:00+00:00",
    );
    check_in(
        "UTC",
        "new Date('Sun, 13 Mar 2016 10:00:00 GMT').getTime()",
        "1457863200000",
    );
    check_in(
        "UTC",
        "moment.tz('2016-03-13 10:00', 'America/New_York').format()",
        "2016-03-13T10:00:00-04:00",
    );
    check_in(
        "UTC",
        "moment(session_time).tz('Asia/Tokyo').format('HH:mm z')",
        "19:00 JST",
    );
    check_in(
        "Asia/Tokyo",
        "moment(session_time).utc().local().format('HH')",
        "19",
    );
    check_in("UTC", "moment.isMoment(moment())", "true");
    check_in("UTC", "moment(session_time).utcOffset()", "0");
    check_in(
        "America/Los_Angeles",
        "moment(session_time).utcOffset()",
        "-420",
    );
}

#[test]
fn moment_dst_arithmetic_keeps_wall_time_for_days_and_absolute_time_for_hours() {
    let la = "America/Los_Angeles";
    // Spring forward 2016-03-13 02:00 -> 03:00 in Los Angeles.
    check_in(
        la,
        "moment('2016-03-12T02:30:00').add(1, 'days').format()",
        "2016-03-13T03:30:00-07:00",
    );
    check_in(
        la,
        "moment('2016-03-12T01:30:00').add(1, 'days').format()",
        "2016-03-13T01:30:00-08:00",
    );
    check_in(
        la,
        "moment('2016-03-13T01:30:00').add(1, 'hours').format()",
        "2016-03-13T03:30:00-07:00",
    );
    check_in(
        la,
        "moment('2016-03-13T03:30:00').subtract(1, 'days').format()",
        "2016-03-12T03:30:00-08:00",
    );
    check_in(
        la,
        "moment('2016-03-13T00:00:00').add(24, 'hours').format()",
        "2016-03-14T01:00:00-07:00",
    );
    check_in(
        la,
        "moment('2016-03-13T00:00:00').add(1, 'day').format()",
        "2016-03-14T00:00:00-07:00",
    );
    // Fall back 2016-11-06 02:00 -> 01:00: 01:30 happens twice.
    check_in(
        la,
        "moment('2016-11-06T01:30:00-07:00').add(1, 'hours').format()",
        "2016-11-06T01:30:00-08:00",
    );
    check_in(
        la,
        "moment('2016-11-05T01:30:00').add(1, 'days').format()",
        "2016-11-06T01:30:00-07:00",
    );
    check_in(
        la,
        "moment('2016-11-06T00:00:00').add(1, 'days').format()",
        "2016-11-07T00:00:00-08:00",
    );
    check_in(
        la,
        "moment('2016-11-06T12:00:00').startOf('day').format()",
        "2016-11-06T00:00:00-07:00",
    );
    let london = "Europe/London";
    check_in(
        london,
        "moment('2016-03-26T01:30:00').add(1, 'days').format()",
        "2016-03-27T02:30:00+01:00",
    );
    check_in(
        london,
        "moment('2016-03-27T00:30:00').add(1, 'hours').format()",
        "2016-03-27T02:30:00+01:00",
    );
    check_in(
        london,
        "moment('2016-10-29T01:30:00').add(1, 'days').format()",
        "2016-10-30T01:30:00+01:00",
    );
    check_in(
        london,
        "moment('2016-10-30T01:30:00+01:00').add(1, 'hours').format()",
        "2016-10-30T01:30:00+00:00",
    );
}

/// Parses YAML-ish `.dig` text into a map value.
pub(super) fn dig_map(text: &str) -> dig::Value {
    let mut sources = crate::diag::SourceMap::new();
    dig::parse_document(&mut sources, "t.dig".into(), text.to_string()).unwrap()
}

fn eval_dig(text: &str, plain: &JsonMap) -> Result<Evaluated, Error> {
    let doc = dig_map(text);
    let map = doc.as_map().unwrap();
    eval_params(&[Layer::Plain(plain), Layer::Raw(map)], &ctx_in("UTC"))
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn params_resolve_regardless_of_order() {
    let got = eval_dig(
        "b: ${a}\nc: x${nested.value}\na: ${1 + 1}\nnested:\n  value: ${a}v\n",
        &JsonMap::new(),
    )
    .unwrap();
    assert_eq!(
        serde_json::Value::Object(got.params),
        json(r#"{"b": "2", "c": "x2v", "a": "2", "nested": {"value": "2v"}}"#)
    );
}

#[test]
fn reference_cycle_is_an_error_naming_the_keys() {
    let err = eval_dig("a: ${b}\nb: ${c}\nc: ${a}\n", &JsonMap::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "reference cycle between params: `a -> b -> c -> a`"
    );
    let err = eval_dig("a: ${a + 1}\n", &JsonMap::new()).unwrap_err();
    assert_eq!(err.to_string(), "reference cycle between params: `a -> a`");
}

#[test]
fn failure_in_a_referenced_param_is_reported_as_itself() {
    let err = eval_dig("a: ${b}\nb: ${nope}\n", &JsonMap::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to evaluate `${nope}`: ReferenceError: \"nope\" is not defined"
    );
}

#[test]
fn non_string_values_are_untouched_and_templates_become_strings() {
    let got = eval_dig(
        "n: 1\nf: 1.5\nb: true\nz: null\nlist: [1, '${1+1}']\nt: ${1+1}\n",
        &JsonMap::new(),
    )
    .unwrap();
    assert_eq!(
        serde_json::Value::Object(got.params),
        json(r#"{"n": 1, "f": 1.5, "b": true, "z": null, "list": [1, "2"], "t": "2"}"#)
    );
}

#[test]
fn do_blocks_are_never_evaluated_and_error_check_are_not_params() {
    let got = eval_dig(
        "for_each>: {x: [1]}\n_do:\n  echo>: ${x}\nnested:\n  _else_do:\n    echo>: ${y}\n_error:\n  echo>: ${z}\n_check:\n  echo>: ${w}\n",
        &JsonMap::new(),
    )
    .unwrap();
    assert_eq!(
        serde_json::Value::Object(got.params),
        json(
            r#"{"for_each>": {"x": [1]}, "_do": {"echo>": "${x}"},
                "nested": {"_else_do": {"echo>": "${y}"}}}"#
        )
    );
}

#[test]
fn later_layers_win_and_maps_merge_deeply() {
    let base: JsonMap =
        serde_json::from_str(r#"{"a": {"x": 1, "y": 2}, "k": "base", "s": "${not_evaluated}"}"#)
            .unwrap();
    let got = eval_dig("a:\n  y: 3\nk: ${s}\n", &base).unwrap();
    assert_eq!(
        serde_json::Value::Object(got.params),
        json(r#"{"a": {"x": 1, "y": 3}, "k": "${not_evaluated}", "s": "${not_evaluated}"}"#)
    );
}

#[test]
fn secrets_stay_literal_and_their_keys_are_listed() {
    let got = eval_dig(
        "pw: ${secret:db.password}\n_env:\n  TOKEN: x${secret:token}\nplain: ${1}\n",
        &JsonMap::new(),
    )
    .unwrap();
    assert_eq!(got.params["pw"], "${secret:db.password}");
    assert_eq!(got.params["_env"]["TOKEN"], "x${secret:token}");
    assert_eq!(got.secret_keys, vec!["pw".to_string(), "_env".to_string()]);
    let got = eval_dig(
        "headers:\n  - \"${secret:h}\": v\nplain: x\n",
        &JsonMap::new(),
    )
    .unwrap();
    assert_eq!(got.secret_keys, vec!["headers".to_string()]);
}

#[test]
fn random_values_are_evaluated_once_and_stored_results_are_never_reevaluated() {
    let doc = dig_map(
        "copy: ${retry_attempt_name}\nretry_attempt_name: ${Math.random()}\nlater: ${'$'}{Math.random()}\nagain: ${retry_attempt_name}\n",
    );
    let map = doc.as_map().unwrap();
    let first = eval_params(&[Layer::Raw(map)], &ctx_in("UTC")).unwrap();
    let r = first.params["retry_attempt_name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(r.parse::<f64>().unwrap() < 1.0);
    // Evaluated once per call: every reference sees the same value, before or after it.
    assert_eq!(first.params["copy"], r.as_str());
    assert_eq!(first.params["again"], r.as_str());
    // `${'$'}{...}` is Digdag's escape for a literal `${`: the result holds template text.
    assert_eq!(first.params["later"], "${Math.random()}");
    // The engine stores the result and passes it back as a plain layer: nothing changes.
    let again = eval_params(&[Layer::Plain(&first.params)], &ctx_in("UTC")).unwrap();
    assert_eq!(again.params, first.params);
    let value = eval_value(
        &dig_map("v: ${retry_attempt_name}\n"),
        &first.params,
        &ctx_in("UTC"),
    )
    .unwrap();
    assert_eq!(value, json(&format!(r#"{{"v": "{r}"}}"#)));
}

#[test]
fn eval_value_evaluates_against_plain_params() {
    let params: JsonMap = serde_json::from_str(r#"{"n": 3, "list": [1, 2]}"#).unwrap();
    let v = dig_map("retry: ${n}\nif: ${n == 3}\nall: ${list}\nkeep: 5\n");
    let got = eval_value(&v, &params, &ctx_in("UTC")).unwrap();
    assert_eq!(
        got,
        json(r#"{"retry": "3", "if": "true", "all": "[1,2]", "keep": 5}"#)
    );
}

fn info(tz: &str, session_time: &str) -> SessionInfo {
    SessionInfo {
        timezone: tz.into(),
        session_time: session_time.parse().unwrap(),
        session_uuid: "414a8b9e-b365-4394-916a-f0ed9987bd2b".into(),
        session_id: 2381,
        attempt_id: 7,
        project_id: 12345,
        task_name: "+wf+task".into(),
        retry_attempt_name: None,
        last_session_time: None,
        next_session_time: None,
        last_executed_session_time: None,
    }
}

fn session_vars(b: &JsonMap, prefix: &str) -> String {
    [
        "time",
        "date",
        "date_compact",
        "local_time",
        "tz_offset",
        "unixtime",
    ]
    .iter()
    .map(|s| match &b[&format!("{prefix}_{s}")] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
    .collect::<Vec<_>>()
    .join(" | ")
}

#[test]
fn builtins_have_digdags_formats() {
    let b = builtins(&info("America/Los_Angeles", "2016-01-30T08:00:00Z"));
    assert_eq!(b["timezone"], "America/Los_Angeles");
    assert_eq!(b["session_uuid"], "414a8b9e-b365-4394-916a-f0ed9987bd2b");
    assert_eq!(b["session_id"], 2381);
    assert_eq!(b["attempt_id"], 7);
    assert_eq!(b["project_id"], 12345);
    assert_eq!(b["task_name"], "+wf+task");
    assert_eq!(
        session_vars(&b, "session"),
        "2016-01-30T00:00:00-08:00 | 2016-01-30 | 20160130 | 2016-01-30 00:00:00 | -0800 | 1454140800"
    );
    assert!(b["session_unixtime"].is_number());
    assert!(!b.contains_key("retry_attempt_name"));
    assert!(!b.contains_key("last_session_time"));
    assert!(!b.contains_key("last_executed_session_time"));
    let utc = builtins(&info("UTC", "2016-01-30T00:00:00Z"));
    assert_eq!(utc["session_time"], "2016-01-30T00:00:00+00:00");
    assert_eq!(utc["session_tz_offset"], "+0000");
}

#[test]
fn builtins_for_scheduled_and_named_attempts() {
    let mut i = info("Asia/Tokyo", "2016-01-30T15:00:00Z");
    i.retry_attempt_name = Some("retry01".into());
    i.last_session_time = Some("2016-01-29T15:00:00Z".parse().unwrap());
    i.next_session_time = Some("2016-01-31T15:00:00Z".parse().unwrap());
    let b = builtins(&i);
    assert_eq!(b["retry_attempt_name"], "retry01");
    assert_eq!(
        session_vars(&b, "last_session"),
        "2016-01-30T00:00:00+09:00 | 2016-01-30 | 20160130 | 2016-01-30 00:00:00 | +0900 | 1454079600"
    );
    assert_eq!(
        session_vars(&b, "next_session"),
        "2016-02-01T00:00:00+09:00 | 2016-02-01 | 20160201 | 2016-02-01 00:00:00 | +0900 | 1454252400"
    );
    assert_eq!(
        session_vars(&b, "last_executed_session"),
        " |  |  |  | +0900 | "
    );
    i.last_executed_session_time = Some("2016-01-28T15:00:00Z".parse().unwrap());
    assert_eq!(builtins(&i)["last_executed_session_date"], "2016-01-29");
}

#[test]
fn builtins_inside_dst_changes() {
    for (tz, instant, expected) in [
        // Los Angeles spring forward: 01:30 PST, then 03:30 PDT (02:30 does not exist).
        ("America/Los_Angeles", "2016-03-13T09:30:00Z", "2016-03-13T01:30:00-08:00 | 2016-03-13 | 20160313 | 2016-03-13 01:30:00 | -0800 | 1457861400"),
        ("America/Los_Angeles", "2016-03-13T10:30:00Z", "2016-03-13T03:30:00-07:00 | 2016-03-13 | 20160313 | 2016-03-13 03:30:00 | -0700 | 1457865000"),
        // Los Angeles fall back: 01:30 happens twice.
        ("America/Los_Angeles", "2016-11-06T08:30:00Z", "2016-11-06T01:30:00-07:00 | 2016-11-06 | 20161106 | 2016-11-06 01:30:00 | -0700 | 1478421000"),
        ("America/Los_Angeles", "2016-11-06T09:30:00Z", "2016-11-06T01:30:00-08:00 | 2016-11-06 | 20161106 | 2016-11-06 01:30:00 | -0800 | 1478424600"),
        // London spring forward 2016-03-27 01:00 GMT -> 02:00 BST.
        ("Europe/London", "2016-03-27T00:30:00Z", "2016-03-27T00:30:00+00:00 | 2016-03-27 | 20160327 | 2016-03-27 00:30:00 | +0000 | 1459038600"),
        ("Europe/London", "2016-03-27T01:30:00Z", "2016-03-27T02:30:00+01:00 | 2016-03-27 | 20160327 | 2016-03-27 02:30:00 | +0100 | 1459042200"),
        // London fall back 2016-10-30 02:00 BST -> 01:00 GMT: 01:30 twice.
        ("Europe/London", "2016-10-30T00:30:00Z", "2016-10-30T01:30:00+01:00 | 2016-10-30 | 20161030 | 2016-10-30 01:30:00 | +0100 | 1477787400"),
        ("Europe/London", "2016-10-30T01:30:00Z", "2016-10-30T01:30:00+00:00 | 2016-10-30 | 20161030 | 2016-10-30 01:30:00 | +0000 | 1477791000"),
    ] {
        let mut i = info(tz, instant);
        i.last_session_time = Some(i.session_time);
        i.next_session_time = Some(i.session_time);
        let b = builtins(&i);
        assert_eq!(session_vars(&b, "session"), expected, "{tz} {instant}");
        assert_eq!(session_vars(&b, "last_session"), expected, "{tz} {instant}");
        assert_eq!(session_vars(&b, "next_session"), expected, "{tz} {instant}");
        let epoch_offset = if tz == "Europe/London" { "+0100" } else { "-0800" };
        assert_eq!(b["last_executed_session_tz_offset"], epoch_offset);
        // moment sees the same wall time as the built-ins.
        check_in(tz, &format!("moment('{instant}').format('YYYY-MM-DD HH:mm:ss')"), expected.split(" | ").nth(3).unwrap());
    }
}

#[test]
fn sandbox_survives_deep_nesting_on_a_small_stack() {
    // 2 MiB is the default stack of spawned threads (tokio workers, test threads).
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let deep = format!("{}1{}", "[".repeat(60), "]".repeat(60));
            let nested = "(function f(n){ return n == 0 ? 0 : [[[[[[[[[[f(n - 1)]]]]]]]]]] })(60)";
            check(nested, &format!("error: failed to evaluate `${{{nested}}}`: RangeError: expression nested too deeply (maximum call stack size exceeded)"));
            let parens = format!("{}1{}", "(".repeat(60), ")".repeat(60));
            check(&parens, "1");
            check(&format!("JSON.stringify({deep}).length"), "121");
            check(
                "(function(){ var a = []; a.push(a); return JSON.stringify(a) })()",
                "error: failed to evaluate `${(function(){ var a = []; a.push(a); return JSON.stringify(a) })()}`: RangeError: expression nested too deeply (maximum call stack size exceeded)",
            );
            check(
                "(function(){ var a = []; a.push(a); return String(a) })()",
                "error: failed to evaluate `${(function(){ var a = []; a.push(a); return String(a) })()}`: RangeError: expression nested too deeply (maximum call stack size exceeded)",
            );
            // A long chain of params referencing each other stops cleanly.
            let mut raw = JsonMap::new();
            for i in 0..200 {
                raw.insert(format!("p{i}"), serde_json::Value::String(format!("${{p{}}}", i + 1)));
            }
            let err = eval_params(&[Layer::RawJson(&raw)], &ctx_in("UTC")).unwrap_err();
            assert!(err.to_string().contains("too deeply"), "{err}");
            // 20,000 nested arrays (far more than a recursive drop fits in 2 MiB) are freed without recursion.
            check(
                "(function(){ var a = []; for (var i = 0; i < 20000; i++) { a = [a] } return 1 })()",
                "1",
            );
        })
        .unwrap();
    handle.join().unwrap();
}

/// Runs `f` on a thread with the 2 MiB stack of spawned threads (tokio workers, the blocking
/// pool, test threads), so a missing depth limit shows up as a crash of the test.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn deep_expressions_fail_cleanly_on_a_small_stack() {
    // Issue 12: 25,000 prefix `++` overflowed the stack (SIGABRT) in `check` and `run`.
    on_small_stack(|| {
        let n = 25_000;
        let deep = [
            format!("{}x", "++".repeat(n)),
            format!("{}1", "--".repeat(n)),
            format!("{}1", "!".repeat(n)),
            format!("1{}", "+1".repeat(n)),
            format!("a{}", "&&a".repeat(n)),
            format!("a{}", ".b".repeat(n)),
            format!("a{}", "[0]".repeat(n)),
            format!("f{}", "()".repeat(n)),
            format!("new {}", "a.".repeat(n) + "b"),
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("{}1{}", "[".repeat(n), "]".repeat(n)),
            format!("{}1{}", "{a:".repeat(n), "}".repeat(n)),
            format!("{}1", "a?1:".repeat(n)),
            format!("{}1", "x=".repeat(n)),
            format!("{}1{}", "function(){return ".repeat(n), "}".repeat(n)),
            format!("(function(){{{}}})()", "if(1)".repeat(n) + "1"),
        ];
        for expr in &deep {
            let err = parse::parse_expression(expr).unwrap_err();
            assert!(err.too_deep, "{}: {}", excerpt(expr), err.message);
            let mut raw = JsonMap::new();
            raw.insert("out".into(), format!("${{{expr}}}").into());
            let err = eval_params(&[Layer::RawJson(&raw)], &ctx_in("UTC")).unwrap_err();
            assert!(
                err.to_string().contains("nested deeper than 128 levels"),
                "{}: {err}",
                excerpt(expr)
            );
            // The message quotes a short excerpt, not 50 KB of source.
            assert!(err.to_string().len() < 600, "{}", err.to_string().len());
            let text = format!("+a:\n  echo>: \"${{{expr}}}\"\n");
            let diags = check_text(&text);
            assert!(
                diags.iter().any(|d| d.is_error()),
                "{}: `spade check` must report an error",
                excerpt(expr)
            );
        }
        // The deepest chain the parser accepts still evaluates on this stack.
        check(&format!("1{}", "+1".repeat(120)), "121");
        check(&format!("{}1{}", "(".repeat(60), ")".repeat(60)), "1");
        check(&format!("x = 1, {}x", "- ".repeat(120)), "1");
    });
}

/// The diagnostics `spade check` gives for a workflow text.
fn check_text(text: &str) -> Vec<Diagnostic> {
    let mut sources = crate::diag::SourceMap::new();
    let (wf, diags) = crate::dig::load_source(
        &mut sources,
        std::path::Path::new("."),
        std::path::Path::new("w.dig"),
        text.as_bytes().to_vec(),
    );
    assert!(!diags.iter().any(|d| d.is_error()), "{diags:?}");
    check_workflow(&wf.unwrap())
}

#[test]
fn javascript_idioms_behave_like_javascript() {
    check("'a/b'.replace(/\\//g, '-')", "a-b");
    check("(-0.0001).toFixed(2)", "-0.00");
    check("'2016-01-30'.split('-').join('')", "20160130");
    check(
        "JSON.stringify(moment(session_time))",
        "\"2016-03-13T10:00:00.000Z\"",
    );
    check(
        "moment(session_time).add(1, 'days') > moment(session_time)",
        "true",
    );
    check("moment(session_time) + 1", "1457863200001");
    check("[1,2,3].map(String)", "[\"1\",\"2\",\"3\"]");
    check("['1','2'].map(Number)", "[1,2]");
    check("['10','10'].map(parseInt)", "[10,null]");
    check("typeof Math.floor", "function");
    check("obj.hasOwnProperty('k')", "true");
    check(
        "(function(){ var o = {}; o.x = {y: 1}; o.x.y += 2; return o.x.y })()",
        "3",
    );
    check("s[0] + s.charAt(2)", "sr");
    check("a == 1 && s == 'str' ? 'yes' : 'no'", "yes");
    check(
        "session_time.substring(0, 10).replace(/-/g, '')",
        "20160313",
    );
}

#[test]
fn statements_are_allowed_like_javascripts_eval() {
    check("var x = 1; x + 1", "2");
    check("var t = 0; for (var i = 0; i < 4; i++) { t += i } t", "6");
    check("if (a == 1) { 'x' }", "");
    check("this['s']; s", "str");
    check(
        "var = 1",
        "error: failed to evaluate `${var = 1}`: syntax error at offset 4: expected a name, found `=`",
    );
}

#[test]
fn switch_throw_try_catch_finally() {
    check(
        "(function(x){ switch (x) { case 1: return 'one'; case 2: case 3: return 'few'; default: return 'many' } })(3)",
        "few",
    );
    check(
        "(function(){ var r = ''; switch ('b') { case 'a': r += 'a'; case 'b': r += 'b'; case 'c': r += 'c'; break; default: r += 'd' } return r })()",
        "bc",
    );
    check(
        "(function(){ switch (9) { case 1: return 1 } return 'none' })()",
        "none",
    );
    check(
        "(function(){ try { return JSON.parse('nope') } catch (e) { return e.name } })()",
        "SyntaxError",
    );
    check(
        "(function(){ try { null.x } catch (e) { return e.name + ' ' + (e.message.length > 0) } })()",
        "TypeError true",
    );
    check(
        "(function(){ try { throw new Error('boom') } catch (e) { return e.message } })()",
        "boom",
    );
    check(
        "(function(){ try { throw 'raw' } catch (e) { return e } })()",
        "raw",
    );
    check(
        "(function(){ try { null.x } catch (e) { return (e instanceof Error) + ' ' + (e instanceof TypeError) + ' ' + (e instanceof RangeError) } })()",
        "true true false",
    );
    check(
        "(function(){ var log = []; try { log.push('t') } finally { log.push('f') } return log.join() })()",
        "t,f",
    );
    check(
        "(function(){ throw new TypeError('bad') })()",
        "error: failed to evaluate `${(function(){ throw new TypeError('bad') })()}`: TypeError: bad",
    );
}

#[test]
fn sandbox_stops_cannot_be_caught() {
    let started = std::time::Instant::now();
    let expr = "(function(){ while (true) { try { while (true) {} } catch (e) {} } })()";
    check(
        expr,
        &format!("error: failed to evaluate `${{{expr}}}`: expression stopped after running longer than 1 s"),
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let expr = "(function(){ try { var a = []; while (true) { a.push('x'.repeat(8000000) + a.length) } } catch (e) { return 'caught' } })()";
    check(
        expr,
        &format!("error: failed to evaluate `${{{expr}}}`: RangeError: expression allocated more than 256 MiB"),
    );
}
