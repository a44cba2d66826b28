// Cases of the `${...}` differential test: a deterministic set of templates, each with a
// category (the report groups by it), a zone and a session time; most come from generators
// over values that real workflows meet, plus every placeholder of `../shared/corpus/digdag`.
'use strict';

const fs = require('fs');
const path = require('path');

// A small seeded PRNG (mulberry32), so every run generates the same cases.
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (list) => list[Math.floor(next() * list.length)],
  };
}

const ZONES = ['UTC', 'Asia/Tokyo', 'America/Los_Angeles', 'Europe/London', 'Asia/Kolkata', 'Australia/Lord_Howe'];

// Session times chosen for the edges moment code meets: month and year ends, leap days, DST
// changes of the zones above, ISO week-year boundaries.
const SESSION_TIMES = [
  '2016-03-13T10:00:00Z',
  '2016-02-29T00:00:00Z',
  '2016-02-29T15:30:00Z',
  '2024-02-29T12:00:00Z',
  '2023-01-31T23:59:59Z',
  '2020-12-31T15:00:00Z',
  '2021-01-01T00:00:00Z',
  '2021-01-03T12:00:00Z',
  '2018-12-30T12:00:00Z',
  '2016-11-06T08:30:00Z',
  '2016-11-06T09:30:00Z',
  '2016-10-30T01:30:00Z',
  '2016-03-27T01:30:00Z',
  '2019-04-06T15:30:00Z',
  '2026-05-17T07:45:12Z',
  '2000-01-01T00:00:00Z',
  '1999-12-31T23:00:00Z',
  '2016-01-30T08:00:00Z',
  '2038-01-19T03:14:07Z',
  '1970-01-01T00:00:00Z',
];

const q = (s) => JSON.stringify(s);

function corpusExpressions(corpusDir) {
  const found = new Set();
  if (!fs.existsSync(corpusDir)) {
    return [];
  }
  const walk = (dir) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      if (fs.statSync(p).isDirectory()) {
        walk(p);
      } else if (p.endsWith('.dig')) {
        const text = fs.readFileSync(p, 'utf8');
        for (let i = text.indexOf('${'); i >= 0; i = text.indexOf('${', i + 1)) {
          if (/^[a-z]+:/.test(text.slice(i + 2))) {
            continue;
          }
          let depth = 0;
          for (let j = i + 2; j < text.length && text[j] !== '\n'; j++) {
            if (text[j] === '{') {
              depth++;
            } else if (text[j] === '}') {
              if (depth === 0) {
                found.add(text.slice(i, j + 1));
                break;
              }
              depth--;
            }
          }
        }
      }
    }
  };
  walk(corpusDir);
  return [...found];
}

// Params that the corpus placeholders and the real-world cases read.
const WORKFLOW_PARAMS = {
  order: 'asc', animal: 'cat', a: 1, b: 'two', nested: { value: 'deep' }, oval: 'o', pval: 'p',
  counts: [1, 2, 3], count: 3, value1: 'v1', parallel: true, i: 2, object: { override: 'x', new_data: 1, reset: null },
  new_value: 'nv', complex: { keep: 'k', nested: { old_value: 1, new_field: [1, { x: 2 }] } },
  outdir: '/tmp/out', name: 'spade', n: 42, verb: 'run', fruit: 'apple', val: '1', cond: 'fail',
  td: { last_results: { cnt: 3, name: 'x', ratio: 0.1 }, each: { symbol: 'AAPL', time: 1457863200, open: 101.5, close: 99.25, high: 102.75, low: 98, volume: 12345678, a: 1, b: 'b' }, database: 'db' },
  gcs_wait: { last_object: { name: 'o.csv', size: 10 } }, http: { last_content: '{"id": 12, "items": [1, 2], "name": "x"}' },
  v: [1, 2, 3], outer: 'o', inner: 'i', pg: { last_results: { name: 'pg', id: 5 } }, user: { name: 'u', company: { name: 'TD' } },
  error: { message: 'boom: it failed', error_code: 12, stacktrace: 'at x' }, child_fail: 'yes', path: 'a/b/c.csv',
  s3: { last_object: { key: 'k/2016/01.csv', size: 9 } }, my_params: { a: 1, b: [2] }, cmd: 'echo hi', table: 'events',
  from: '2016-01-01', to: '2016-02-01', emr: { last_cluster_id: 'j-1' }, range: { from: 0, to: 10 },
  ratio: 0.1 + 0.2, big: 1e21, tiny: 6.262589054136868e-10, neg: -0.5, huge_int: 9007199254740993, half: 2.5,
  list: ['b', 'a', 'c', '10', '9'], nums: [10, 9, 1, 100, -5, 2.5], words: 'the quick brown fox',
  csv: 'a,b,,c', json_text: '{"b": 1, "a": [1, 2, {"c": null}], "2": "two", "1": "one"}', flag: false, empty: '', nothing: null,
  mixed: { b: 1, 2: 'two', a: 3, 1: 'one', '-1': 'neg', '01': 'lead' },
  dates: ['2016-01-31', '2016-02-29', '2015-12-31'], url: 'https://example.com/a b?x=1&y=é#frag',
};

function templates() {
  const r = rng(20160313);
  const cases = [];
  const add = (category, template, extra = {}) => {
    cases.push({
      category,
      template,
      tz: extra.tz || r.pick(ZONES),
      session_time: extra.session_time || r.pick(SESSION_TIMES),
      params: extra.params || WORKFLOW_PARAMS,
    });
  };
  const expr = (category, e, extra) => add(category, '${' + e + '}', extra);
  return { r, add, expr, cases };
}

function numbers(g) {
  const { r, expr } = g;
  const literals = ['0', '-0', '1', '0.1', '0.2', '1e21', '1e-7', '123456789012345680000', '1907850397351936.25',
    '0.000001', '1.5e-10', '5e-324', '1.7976931348623157e308', '4.35', '0.1 + 0.2', '1 / 3', '2 / 3', '100 / 7',
    '1e16 + 1', '2e-7', '123e-20', '0.5e-6', '1e300 * 1e10', '-1e-7', '9007199254740993', '0x1F', '0xff', '.5', '5.',
    '1.0000000000000002', '6.262589054136868e-10', '4.94e-322', '2.2250738585072014e-308', '12345.6789e3'];
  for (const l of literals) {
    expr('numbers: literals and toString', l);
    expr('numbers: literals and toString', `String(${l})`);
  }
  for (let i = 0; i < 600; i++) {
    const mant = (r.next() * 10 - 5) * Math.pow(10, r.int(-12, 22));
    const n = r.next() < 0.5 ? mant : Math.round(mant * 1000) / r.pick([1, 3, 7, 1000, 1024]);
    expr('numbers: literals and toString', `${n}`);
    expr('numbers: arithmetic', `${n} * ${r.pick([3, 0.1, 1e-3, 7.5])} + ${r.pick([0.2, 1, 1e10])}`);
  }
  // JSON numbers through params: they must reach JavaScript unchanged.
  for (let i = 0; i < 300; i++) {
    const bits = r.next() * Math.pow(10, r.int(-20, 20)) * (r.next() < 0.3 ? -1 : 1);
    const params = Object.assign({}, WORKFLOW_PARAMS, { x: bits, xs: [bits, bits / 3], o: { v: bits * 7 } });
    expr('numbers: JSON params', 'x', { params });
    expr('numbers: JSON params', 'JSON.stringify(xs)', { params });
    expr('numbers: JSON params', 'o.v', { params });
  }
  const radixValues = ['255', '0.5', '0.1', '3.75', '-255.5', '1/3', '2.5e-5', '123.456', '1e21', '0.000001', 'Math.PI', '1e-7', '4294967296.125'];
  for (const v of radixValues) {
    for (const radix of [2, 3, 8, 16, 36]) {
      expr('numbers: toString(radix)', `(${v}).toString(${radix})`);
    }
  }
  for (const v of ['1.005', '1.45', '0.5', '1.5', '2.5', '-1.5', '1e21', '123.456', '0.000001', '1.23e-10', '-0.0001', '10.235', '8.345']) {
    for (const d of [0, 1, 2, 5, 10]) {
      expr('numbers: toFixed', `(${v}).toFixed(${d})`);
    }
  }
  const intStrings = ['123', '  42px', '-17', '0x1A', '0x', '08', '012', '1e3', '12345678901234567890', '9007199254740993',
    '123456789012345678901234567890', '99999999999999999999999', '1.9', '', 'abc', '+5', '-0', '0b11', 'ff', '   7   ',
    '18014398509481985', '36028797018963971', '111111111111111111111111111111111111111111111111111111111'];
  for (const s of intStrings) {
    expr('numbers: parseInt and parseFloat', `parseInt(${q(s)})`);
    for (const radix of [2, 8, 10, 16, 36]) {
      expr('numbers: parseInt and parseFloat', `parseInt(${q(s)}, ${radix})`);
    }
    expr('numbers: parseInt and parseFloat', `parseFloat(${q(s)})`);
    expr('numbers: parseInt and parseFloat', `Number(${q(s)})`);
  }
  for (let i = 0; i < 150; i++) {
    const digits = Array.from({ length: r.int(15, 40) }, () => r.int(0, 9)).join('');
    expr('numbers: parseInt and parseFloat', `parseInt(${q(digits)})`);
    expr('numbers: parseInt and parseFloat', `parseInt(${q(digits.replace(/[2-9]/g, '1'))}, 2)`);
    expr('numbers: parseInt and parseFloat', `parseInt(${q(digits)}, 16)`);
    expr('numbers: parseInt and parseFloat', `parseFloat(${q('0.' + digits)})`);
  }
  const mathArgs = ['0.49999999999999994', '-0.5', '0.5', '-2.5', '2.5', '1.4999999999999998', '-0.49999999999999994',
    '4503599627370495.5', '-4503599627370495.5', '1e21', 'NaN', '-0', '3.7', '-3.7'];
  for (const a of mathArgs) {
    for (const f of ['round', 'floor', 'ceil', 'abs', 'trunc', 'sign']) {
      expr('numbers: Math', `Math.${f}(${a})`);
    }
  }
  for (const e of ['Math.max()', 'Math.min()', 'Math.max(1, "3", 2)', 'Math.pow(2, 0.5)', 'Math.sqrt(2)', 'Math.pow(-8, 1/3)',
    'Math.atan2(1, 1)', 'Math.log(10)', 'Math.exp(1)', 'Math.max(NaN, 1)', '1/0', '-1/0', '0/0', '5 % 3', '-5 % 3', '5.5 % 2',
    '7 >> 1', '-7 >>> 28', '1 << 31', '~5', '5 & 3', '5 | 3', '5 ^ 3', '0.1 * 3', '1e308 * 10']) {
    expr('numbers: Math', e);
  }
  // Legacy octal literals and escapes of ES5's Annex B.
  for (const e of ['012', '0777', '08', '09', '019', '010 + 1', '00', '0', '-012', '0.5', '012.5', '"\\101"', '"\\0"', '"\\12"',
    '"\\1234"', '"\\377"', '"\\400"', '"\\8"', '"\\9"', '"\\x41\\u0042"', "'\\a\\c\\d'", '"\\7a"', '"\\07"', '"a\\\nb"',
    '"\\u00e9"', '"\\x4"', '"\\u12"', '"\\r\\n".length', '"\\v\\f\\b".length']) {
    expr('numbers: octal literals and escapes', e);
  }
}

function objects(g) {
  const { expr } = g;
  const objs = ['{b: 1, "1": 2}', '{b: 1, 2: "x", a: 2, 1: "y"}', '{"10": 1, "9": 2, "a": 3, "-1": 4, "01": 5, "1.5": 6}',
    '{z: 1, y: 2, x: 3}', '{"4294967295": 1, "4294967294": 2, a: 0}', '{1: 1, "1": 2}', '{"": 1, " ": 2, 0: 3}'];
  for (const o of objs) {
    expr('objects: key order', `JSON.stringify(${o})`);
    expr('objects: key order', `Object.keys(${o}).join(",")`);
    expr('objects: key order', `(function(){ var o = ${o}, k = []; for (var p in o) k.push(p); return k.join(",") })()`);
    expr('objects: key order', `(function(){ var o = ${o}; o[3] = "late"; o.c = "c"; return JSON.stringify(o) })()`);
    expr('objects: key order', `${o}`);
  }
  for (const e of ['mixed', 'JSON.stringify(mixed)', 'Object.keys(mixed)', 'JSON.parse(json_text)', 'JSON.stringify(JSON.parse(json_text))',
    'Object.keys(JSON.parse(json_text)).join()', 'JSON.stringify(JSON.parse(\'{"b":1,"a":2,"3":3}\'), null, 2)',
    'JSON.stringify({a: [1, {b: 2}]}, null, "\\t")', 'JSON.stringify({a: undefined, b: function(){}, c: NaN, d: -0})',
    'JSON.stringify([undefined, function(){}, Infinity])', 'JSON.stringify("\\u2028\\u0007é")', 'JSON.stringify({toJSON: function(){ return 5 }})',
    'JSON.stringify(new Date(0))', 'JSON.stringify(/x/)', 'JSON.parse("[1, 2.50, -0, 1e2]")', 'JSON.parse("1e400")',
    'JSON.parse("{\\"a\\": 1, \\"a\\": 2}").a', 'JSON.stringify(nested)', 'complex.nested.new_field[1].x', 'typeof nothing',
    'nothing === null', 'JSON.stringify(td.each)', 'Object.keys(td).length', 'JSON.stringify({a: 1}, ["a"])',
    'JSON.stringify(JSON.parse("{\\"x\\": 6.262589054136868e-10}"))']) {
    expr('objects: JSON', e);
  }
}

function strings(g) {
  const { expr } = g;
  const subjects = ['a,b,,c', 'one two  three', 'a1b2c3', 'aXbxc', '', 'résumé café', '2016-01-30', 'x-y_z.w', 'abc',
    'A\r\nB\nC', 'tab\there', 'ab12cd', 'AbCdEf'];
  const separators = ['","', '" "', '""', '/,/', '/(,)/', '/\\d/', '/(\\d)/', '/x/i', '/(x)|(X)/', '/(?:)/', '/,*/', '/\\s+/',
    '/(-)|(_)/', 'undefined', '"-"', '/b*/', '/$/', '/^/m', '/(a)(b)?/'];
  for (const s of subjects) {
    for (const sep of separators) {
      expr('strings: split', `JSON.stringify(${q(s)}.split(${sep}))`);
    }
    for (const [sep, lim] of [['","', 2], ['/(,)/', 3], ['""', 2], ['" "', 0], ['/\\d/', 1], ['","', -1], ['/(\\d)/', 4], ['","', 4294967297]]) {
      expr('strings: split', `JSON.stringify(${q(s)}.split(${sep}, ${lim}))`);
    }
  }
  const hay = 'canal banana can';
  for (const needle of ['a', 'an', 'can', 'x', '', 'banana can']) {
    for (const from of ['', ', 0', ', 3', ', -5', ', 100', ', NaN', ', 5.7', ', "4"', ', undefined', ', null']) {
      expr('strings: indexOf and lastIndexOf', `${q(hay)}.lastIndexOf(${q(needle)}${from})`);
      expr('strings: indexOf and lastIndexOf', `${q(hay)}.indexOf(${q(needle)}${from})`);
    }
  }
  const regexSubjects = ['héllo wörld_1', 'a\rb\nc', 'ÀB9_x', 'foo.bar-baz', 'über 42', 'tab\tsp ace\u00a0nbsp', 'naïve café', '日本語 text'];
  const regexes = ['/\\w+/g', '/\\W/g', '/\\d/g', '/\\D+/', '/\\bw/g', '/\\B./g', '/./g', '/^.*$/', '/a.b/', '/\\s/g', '/\\S+/g',
    '/[\\w-]+/g', '/[^\\w]/g', '/[\\d.]+/', '/\\w/i', '/[a-z]+/gi', '/^\\w+$/m', '/[\\s\\S]/', '/é/i', '/É/i', '/[À-ÿ]/g', '/x{2}/', '/a{/', '/\\//', '/[]]/'];
  for (const s of regexSubjects) {
    for (const re of regexes) {
      expr('regexes: classes and dot', `JSON.stringify(${q(s)}.match(${re}))`);
      expr('regexes: classes and dot', `${re}.test(${q(s)})`);
    }
  }
  const replaceSubjects = ['John Smith', 'aaa', '2016-01-30', 'a.b.c', 'x', '', 'banana'];
  const replaces = [['/(\\w+)\\s(\\w+)/', '"$2, $1"'], ['/a/g', '"[$&]"'], ['/a/', '"$$"'], ['"a"', '"$&$&"'], ['/(\\d+)-(\\d+)-(\\d+)/', '"$3/$2/$1"'],
    ['/(a)/g', '"$0$1$2$10"'], ['/b/', '"$`|$\'"'], ['/x*/g', '"-"'], ['/an/g', 'function(m, off){ return "<" + m + off + ">" }'],
    ['/(a)(n)?/g', 'function(m, p1, p2, off, s){ return [m, p1, p2, off, s.length].join("|") }'], ['".", "/"', null], ['/\\./g', '"/"'],
    ['/(b)(a)(n)(a)(n)(a)(x)?(y)?(z)?(q)?(w)?/', '"$11-$10-$1$01$001"'], ['"", "_"', null], ['/$/', '"!"'], ['/^/gm', '"> "'],
    ['/a|/g', '"-"'], ['"na"', 'function(){ return arguments.length }'], ['/(?:)/g', '"."']];
  for (const s of replaceSubjects) {
    for (const [pat, rep] of replaces) {
      const args = rep === null ? pat : `${pat}, ${rep}`;
      expr('strings: replace', `${q(s)}.replace(${args})`);
    }
  }
  const uris = ['https://example.com/a b?x=1&y=é#frag', '%41%2F%3F%23%20', 'a%2Fb%3Fc%3Dd%26e', '%E2%82%AC%40%3A', '%', '%zz', '%C3',
    '%3B%2C%2F%3F%3A%40%26%3D%2B%24%23', '%2f%3f', '100%25', 'é€😀', "!*'()~-_.", ';/?:@&=+$,#'];
  for (const u of uris) {
    for (const f of ['decodeURI', 'decodeURIComponent', 'encodeURI', 'encodeURIComponent', 'escape', 'unescape']) {
      expr('strings: URI functions', `${f}(${q(u)})`);
    }
  }
  for (const codes of ['65, 66', '65.9', '-1', '65536 + 65', '0x1F600', '55357, 56832', '97, 4294967393', 'NaN', '"66"', '1e10', '-65535',
    '0xD800', '0xDC00, 0x41', '233', '0', '8364']) {
    expr('strings: String.fromCharCode', `String.fromCharCode(${codes})`);
    expr('strings: String.fromCharCode', `String.fromCharCode(${codes}).length`);
    expr('strings: String.fromCharCode', `String.fromCharCode(${codes}).charCodeAt(0)`);
  }
  const methods = ['toUpperCase()', 'toLowerCase()', 'trim()', 'length', 'charAt(2)', 'charCodeAt(1)', 'slice(-3)', 'slice(2, -1)',
    'substring(5, 2)', 'substr(-4, 2)', 'substr(1)', 'concat("!", 1, null)', 'indexOf("a", -2)', 'split("").reverse().join("")',
    'slice(1, 3).toUpperCase()', 'charAt(100)', 'charCodeAt(100)', 'substring(-1, 100)', 'slice(NaN)', 'substr(2, -1)',
    'toString()', 'valueOf()', 'search(/[aeiou]/)', 'search("z")', 'match(/(\\w)(\\w)/).index', 'localeCompare("b")',
    'replace(/(.)/g, "$1$1")', 'split(" ", 2)', 'trim().length'];
  for (const s of ['  Hello World  ', 'straße', 'İstanbul', 'ǅungla', 'résumé', 'abc', 'ß', 'ﬁx', 'Σίσυφος', '']) {
    for (const m of methods) {
      expr('strings: methods', `${q(s)}.${m}`);
    }
  }
}

function templateRules(g) {
  const { add } = g;
  const texts = ['$${x}', '$$${x}', '$$$${x}', '${ }', '${  }', '${}', 'a${}b', '${', '${x', 'p${x', '}', '$', '$$', 'p$$s',
    '${x}$${x}', 'cost: $$5 ${x}', '${secret:db.password}', '${foo:bar} ${x}', '${Foo:bar}', '${x}${x}', '${"{"}}',
    '${ {a: 1}.a }', '${x} and ${ x + 1 }', '${[x]}', '${{a: x}}', '${null}', '${undefined}', '${true}', '${"s"}', '${NaN}',
    '${x // comment}', '${x /* c */}', '${print("a"), "b"}', 'a${print("p")}b', '${x}\n${x}', "it's ${x}", 'back\\slash ${x}',
    '$${x} $$ ${x', 'unclosed ${x $$', '${"$$"}', '${"${x}"}', '${x}}', '${{}}', '${ x }', '${\nx\n}', '${x;}', '${var y = 1; y}',
    '${(function(){ return 1 })()}', '${function(){}}', '${moment(0)}', '${new Date(0)}', '${[moment(0)]}', '${/re/}',
    '${-0}', '${[1, [2, [3]]]}', '${"a" + "${b}"}', '$x', '$ {x}', '${x}$', '${x}$$', '${\u2028x}', '${"\\u2028"}'];
  for (const t of texts) {
    for (const x of [5, 'str', null]) {
      add('templates', t, { params: Object.assign({}, WORKFLOW_PARAMS, { x }) });
    }
  }
}

function arrays(g) {
  const { expr } = g;
  for (const e of ['nums.sort()', 'nums.slice().sort(function(a, b){ return a - b })', 'list.sort()', 'list.join("|")',
    'nums.map(function(x){ return x * 2 })', 'nums.filter(function(x){ return x > 2 })', 'nums.reduce(function(a, b){ return a + b })',
    'nums.indexOf(1)', 'nums.lastIndexOf(100)', '[1, 2, 3].concat(4, [5, [6]])', '[1, [2, [3]]].toString()', 'String([null, undefined, 1])',
    '[3, 1, 2].reverse()', '[1, 2, 3].splice(1, 1)', '(function(){ var a = [1, 2, 3]; a.splice(1, 0, "x"); return a })()',
    '[1, 2, 3].slice(-2)', '[].join()', 'new Array(3).join("-")', 'Array.isArray(v)', 'v.length', '[1, 2, 3].some(function(x){ return x > 2 })',
    '[1, 2, 3].every(function(x){ return x > 0 })', '[,1].length', '[1, 2, 3].indexOf("2")', '["b", "a", "C"].sort()', '[10, 9, 1].sort()',
    '[1, 2, 3] + ""', '[] + []', '[] + {}', '[1] == 1', '[0] == false', 'counts.map(String)', 'dates.map(function(d){ return moment(d).format("MMM D") })',
    'v.map(function(x){ return x * 5 })', '[5, 1, 10].sort().join()', '["10", "9", "1"].sort(function(a, b){ return a - b })']) {
    expr('arrays', e);
  }
}

function operators(g) {
  const { expr } = g;
  const values = ['1', '"1"', '0', '""', '"0"', 'null', 'undefined', 'true', 'false', 'NaN', '[]', '[1]', '{}', '"a"', '" 1 "', '"1e3"', '-0'];
  for (const a of values) {
    for (const b of ['1', '"1"', '0', 'null', 'undefined', 'true', '""', '[1]', '"b"']) {
      for (const op of ['==', '===', '<', '>=', '+', '-', '*']) {
        expr('operators and coercions', `${a} ${op} ${b}`);
      }
    }
    expr('operators and coercions', `typeof ${a}`);
    expr('operators and coercions', `!${a}`);
    expr('operators and coercions', `+${a}`);
    expr('operators and coercions', `String(${a})`);
    expr('operators and coercions', `${a} ? "yes" : "no"`);
  }
}

function dates(g) {
  const { expr } = g;
  for (const e of ['new Date(0).getTime()', 'new Date(2016, 0, 31).getDate()', 'new Date(2016, 1, 30).getMonth()', 'new Date(2016, 0, 1, 25).getHours()',
    'new Date("2016-03-13").getTime()', 'new Date("2016-03-13T10:00:00").getTime()', 'new Date("2016-03-13T10:00:00Z").toISOString()',
    'Date.UTC(2016, 1, 29)', 'Date.parse("2016-02-30")', 'new Date(NaN).getTime()', 'new Date(2016, 2, 13, 2, 30).getHours()',
    'new Date(0).getTimezoneOffset()', 'new Date(session_unixtime * 1000).getDay()', 'new Date(session_unixtime * 1000).getFullYear()',
    'new Date(1e15).toISOString()', 'new Date(-1).toISOString()', 'new Date(2016, 0).getTime()', 'Date.now() - session_unixtime * 1000',
    'new Date(session_time).getTime() / 1000', 'new Date(2016, 11, 31, 23, 59, 59, 999).getMilliseconds()', 'new Date(8.64e15 + 1).getTime()']) {
    expr('dates', e);
  }
}

const FORMAT_TOKENS = ['YYYY', 'YY', 'Y', 'YYYYY', 'YYYYYY', 'gggg', 'gg', 'GGGG', 'GG', 'M', 'MM', 'MMM', 'MMMM', 'Mo', 'D', 'DD', 'Do',
  'DDD', 'DDDD', 'DDDo', 'd', 'dd', 'ddd', 'dddd', 'do', 'e', 'E', 'w', 'ww', 'wo', 'W', 'WW', 'Wo', 'Q', 'Qo', 'H', 'HH', 'h', 'hh',
  'k', 'kk', 'm', 'mm', 's', 'ss', 'S', 'SS', 'SSS', 'SSSS', 'SSSSSSSSS', 'a', 'A', 'Z', 'ZZ', 'z', 'zz', 'X', 'x', 'LT', 'LTS', 'L',
  'LL', 'LLL', 'LLLL', 'l', 'll', 'lll', 'llll', '[today] YYYY', 'YYYY-MM-DDTHH:mm:ss.SSSZ', '[W]W [of] GGGG', 'N', 'NN', 'u', 'ZZZ'];

function momentCases(g) {
  const { r, expr } = g;
  const subjects = ['moment(session_time)', 'moment.utc(session_time)', 'moment(session_time).utc()', 'moment(session_unixtime * 1000)',
    'moment(session_time).add(37, "days").add(13, "hours")', 'moment(session_time).subtract(9, "months")'];
  for (const s of subjects) {
    for (const t of FORMAT_TOKENS) {
      expr('moment: format', `${s}.format(${q(t)})`);
    }
  }
  for (const f of ['', 'null', 'undefined', '""', '"Y"', '"z"', '"[z]z"', '"YYYY [escaped] MM"', '"YYYY\\\\MM"', '"[unclosed"', '123', 'true']) {
    expr('moment: format', `moment(session_time).format(${f})`);
    expr('moment: format', `moment.utc(session_time).format(${f})`);
  }
  const amounts = ['1', '-1', '1.5', '-1.5', '0.5', '2.4', '2.6', '-0.5', '0.4', '1e3', '"2"', '"1.5"', 'NaN', '0', '31', '-367', '12.5'];
  const units = ['y', 'years', 'year', 'Y', 'Q', 'quarters', 'M', 'months', 'month', 'w', 'weeks', 'W', 'isoWeek', 'd', 'days', 'day', 'D',
    'date', 'dates', 'h', 'hours', 'H', 'm', 'minutes', 'M', 's', 'seconds', 'S', 'ms', 'milliseconds', 'Days', 'HOURS', 'x', 'bogus', '', 'e', 'E', 'dayOfYear'];
  for (const a of amounts) {
    for (const u of units) {
      if (r.next() < 0.45) {
        expr('moment: add and subtract', `moment(session_time).add(${a}, ${q(u)}).format()`);
        expr('moment: add and subtract', `moment(session_time).subtract(${a}, ${q(u)}).format("YYYY-MM-DD HH:mm:ss.SSS")`);
      }
    }
  }
  for (const o of ['{days: 1, hours: 2}', '{d: 1.5}', '{months: 1.5}', '{years: 1, months: -13}', '{w: 2, D: 3}', '{bogus: 3}', '{}',
    '{M: 1, d: -1}', '{ms: 1500}', '{quarters: 1}', '{y: 0.5}', '{days: "2"}', '{weeks: 1.5}', '{h: 1.5, m: 30}']) {
    expr('moment: add and subtract', `moment(session_time).add(${o}).format()`);
    expr('moment: add and subtract', `moment(session_time).subtract(${o}).format()`);
  }
  for (const e of ['add("days", 1)', 'add(1)', 'add()', 'add(1, "days", "x")', 'add(moment.duration ? 1 : 1, "d")', 'add(-1, "M")', 'add(1, "M").add(1, "M")',
    'subtract(1, "y")', 'add(1, "Q")', 'add(0.5, "M")', 'add(1.5, "y")', 'add(-0.5, "d")', 'add(2147483648, "ms")']) {
    expr('moment: add and subtract', `moment(session_time).${e}.format()`);
  }
  const sou = ['year', 'years', 'y', 'quarter', 'Q', 'month', 'M', 'week', 'w', 'isoWeek', 'W', 'day', 'd', 'date', 'D', 'hour', 'h',
    'minute', 'm', 'second', 's', 'millisecond', 'ms', 'bogus', 'Days'];
  for (const u of sou) {
    expr('moment: startOf and endOf', `moment(session_time).startOf(${q(u)}).format("YYYY-MM-DDTHH:mm:ss.SSSZ")`);
    expr('moment: startOf and endOf', `moment(session_time).endOf(${q(u)}).format("YYYY-MM-DDTHH:mm:ss.SSSZ")`);
  }
  const setters = ['year(2023)', 'year(2024)', 'month(1)', 'month(13)', 'month(-1)', 'month("feb")', 'month("September")', 'month("bogus")',
    'date(31)', 'date(0)', 'date(32)', 'day(0)', 'day(7)', 'day(-1)', 'day("Monday")', 'day("sun")', 'day("Fri")', 'day("nope")',
    'weekday(3)', 'isoWeekday(7)', 'isoWeekday(1)', 'hour(25)', 'minute(-1)', 'second(61)', 'millisecond(1500)', 'dayOfYear(366)',
    'dayOfYear(1)', 'week(1)', 'week(53)', 'isoWeek(1)', 'isoWeek(53)', 'quarter(4)', 'quarter(1)', 'weekYear(2020)', 'isoWeekYear(2020)',
    'set("year", 2021)', 'set("month", 1)', 'set({year: 2021, month: 1})', 'set("date", 31)', 'hours(3)', 'years(2000)', 'months(11)',
    'year(2023).month(1)', 'month(1).year(2023)', 'date(31).month(3)', 'utcOffset(0)', 'utcOffset(60)', 'utcOffset(5)', 'utcOffset(-8)',
    'utcOffset("+05:30")', 'utcOffset("-0800")', 'utcOffset("bogus")', 'utcOffset(15.5)', 'utcOffset(16)', 'utcOffset(-15)', 'utcOffset(120, true)',
    'utcOffset("Z")', 'utcOffset("+01")', 'utcOffset(0.5)'];
  for (const st of setters) {
    for (const base of ['moment(session_time)', 'moment("2016-02-29T10:00:00Z")', 'moment("2016-01-31 12:00")', 'moment.utc("2020-12-31T23:59:59.999Z")']) {
      expr('moment: setters', `${base}.${st}.format("YYYY-MM-DDTHH:mm:ss.SSSZ")`);
    }
  }
  const getters = ['year()', 'month()', 'date()', 'day()', 'weekday()', 'isoWeekday()', 'hour()', 'minute()', 'second()', 'millisecond()',
    'dayOfYear()', 'week()', 'weeks()', 'isoWeek()', 'isoWeeks()', 'weekYear()', 'isoWeekYear()', 'quarter()', 'daysInMonth()',
    'isLeapYear()', 'isValid()', 'utcOffset()', 'valueOf()', 'unix()', 'toISOString()', 'toJSON()', 'isDST()', 'get("year")', 'get("M")',
    'get("D")', 'get("bogus")', 'weeksInYear ? 1 : 0', 'toArray ? 1 : 0', 'format()', 'toString()', 'toDate().getTime()', 'days()', 'dates()'];
  for (const gt of getters) {
    for (const d of ['2016-01-01', '2016-12-31', '2017-01-01', '2020-12-31', '2021-01-03', '2018-12-30', '2019-12-29', '2026-12-31', '2010-01-03',
      '2016-02-29T23:00:00+09:00', '2015-06-15T00:00:00-07:00']) {
      expr('moment: getters', `moment(${q(d)}).${gt}`);
    }
  }
  const parseInputs = ['"2016-03-13"', '"2016-03-13T10:00:00"', '"2016-03-13T10:00:00Z"', '"2016-03-13T10:00:00.123+09:00"', '"2016-03-13 10:00"',
    '"2026-02-30"', '"2016-13-01"', '"2016-02-29"', '"2015-02-29"', '"20160313"', '"20160313T100000"', '"2016-W10"', '"2016-W10-3"', '"2016-073"',
    '"2016-03"', '"2016"', '"2016-03-13T24:00:00"', '"2016-03-13T10:00:60"', '"2016-03-13T10"', '"2016-03-13T1000"', '"T10:00"', '"10:00"',
    '"March 13, 2016"', '"Sun, 13 Mar 2016 10:00:00 +0000"', '"2016/03/13"', '""', '"garbage"', 'null', 'undefined', '0', '-1', '1457863200000',
    '[2016, 1, 29]', '[2016, 1, 30]', '[2016]', '{year: 2016, month: 1, day: 29}', '{y: 2016, M: 12}', '"2016-03-13T10:00:00.1234567Z"',
    '"2016-03-13T10:00:00,5Z"', '"2016-03-13 10:00:00 +0900"', '"2016-03-13T10:00:00+0900"', '"2016-03-13T10:00:00 Z"', '"+002016-03-13"',
    '"2016-3-1"', '"  2016-03-13"', 'new Date(0)', 'moment(0)', 'session_time', 'last_session_time', 'session_date', 'session_local_time'];
  for (const input of parseInputs) {
    expr('moment: parsing', `moment(${input}).format()`);
    expr('moment: parsing', `moment(${input}).isValid()`);
    expr('moment: parsing', `moment.utc(${input}).format("YYYY-MM-DD HH:mm:ss.SSS")`);
  }
  const formatParses = [['"13 March 2016"', '"DD MMMM YYYY"'], ['"13th March 2016"', '"Do MMMM YYYY"'], ['"1st Jan 2016"', '"Do MMM YYYY"'],
    ['"2016-02-30"', '"YYYY-MM-DD"'], ['"2016-02-29"', '"YYYY-MM-DD"'], ['"03/13/2016"', '"MM/DD/YYYY"'], ['"13/03/2016"', '"MM/DD/YYYY"'],
    ['"2016-03-13 10:11:12"', '"YYYY-MM-DD HH:mm:ss"'], ['"10:11 pm"', '"hh:mm a"'], ['"12:30 AM"', '"h:mm A"'], ['"1457863200"', '"X"'],
    ['"1457863200123"', '"x"'], ['"20160313"', '"YYYYMMDD"'], ['"16-03-13"', '"YY-MM-DD"'], ['"69-01-01"', '"YY-MM-DD"'], ['"68-01-01"', '"YY-MM-DD"'],
    ['"2016-03-13T10:00:00+09:00"', '"YYYY-MM-DDTHH:mm:ssZ"'], ['"2016-03-13 +0530"', '"YYYY-MM-DD ZZ"'], ['"Sunday, March 13th 2016"', '"dddd, MMMM Do YYYY"'],
    ['"2016 10"', '"YYYY DDD"'], ['"2016-10"', '"GGGG-WW"'], ['"2016 10 3"', '"gggg ww e"'], ['"Q2 2016"', '"[Q]Q YYYY"'], ['"2016.03.13"', '"YYYY.MM.DD"'],
    ['"2016-03-13"', '"YYYY/MM/DD"'], ['"2016-3-1"', '"YYYY-M-D"'], ['"garbage"', '"YYYY-MM-DD"'], ['"2016-03-13 extra"', '"YYYY-MM-DD"'],
    ['"13 Foo 2016"', '"DD MMMM YYYY"'], ['"2016-03-13T25:00"', '"YYYY-MM-DDTHH:mm"'], ['"2016-03-13 10:00:00.5"', '"YYYY-MM-DD HH:mm:ss.S"'],
    ['"March"', '"MMMM"'], ['"10"', '"HH"'], ['"2016"', '"YYYY"'], ['"13"', '"D"'], ['"2016-03-13"', '["MM/DD/YYYY", "YYYY-MM-DD"]'],
    ['"03/13/2016"', '["YYYY-MM-DD", "MM/DD/YYYY"]'], ['"2016-03-13"', '"LL"'], ['"March 13, 2016"', '"LL"'], ['"3/13/2016"', '"L"']];
  for (const [s, f] of formatParses) {
    expr('moment: format parsing', `moment(${s}, ${f}).format("YYYY-MM-DDTHH:mm:ss.SSSZ")`);
    expr('moment: format parsing', `moment(${s}, ${f}).isValid()`);
    expr('moment: format parsing', `moment(${s}, ${f}, true).isValid()`);
    expr('moment: format parsing', `moment(${s}, ${f}, true).format("YYYY-MM-DD HH:mm")`);
    expr('moment: format parsing', `moment.utc(${s}, ${f}).format()`);
  }
  const others = ['"2016-03-10"', '"2016-03-13T10:00:00Z"', '"2016-03-20"', '"2016-03-13"', '"2016-03-14"'];
  for (const a of others) {
    for (const b of others) {
      for (const incl of ['', ', null', ', "day"', ', null, "()"', ', null, "[]"', ', null, "[)"', ', null, "(]"', ', "month", "[]"', ', "day", "[)"']) {
        expr('moment: comparisons', `moment(session_time).isBetween(${a}, ${b}${incl})`);
      }
    }
    for (const m of ['isBefore', 'isAfter', 'isSame', 'isSameOrBefore', 'isSameOrAfter']) {
      for (const u of ['', ', "day"', ', "month"', ', "year"', ', "week"', ', "isoWeek"', ', "hour"', ', "bogus"']) {
        expr('moment: comparisons', `moment(session_time).${m}(${a}${u})`);
      }
    }
    for (const u of ['', '"days"', '"months"', '"years"', '"weeks"', '"hours"', '"minutes"', '"seconds"', '"quarters"', '"bogus"', '"M"', '"D"']) {
      expr('moment: diff', `moment(session_time).diff(${a}${u ? ', ' + u : ''})`);
      expr('moment: diff', `moment(session_time).diff(${a}${u ? ', ' + u : ', undefined'}, true)`);
    }
  }
  for (const e of ['moment.unix(session_unixtime).format()', 'moment.unix(1.5).valueOf()', 'moment.isMoment(moment())', 'moment.max(moment(0), moment(1)).valueOf()',
    'moment.min(moment(0), moment(1)).valueOf()', 'moment().format()', 'moment().valueOf() / 1000', 'moment() > moment(0)', 'moment(session_time) + 0',
    'moment(session_time) + ""', 'String(moment(session_time))', 'moment(session_time).toString()', 'JSON.stringify({t: moment(session_time)})',
    'moment(session_time).clone().add(1, "d").format("L")', 'moment(session_time).utc().local().format()', 'moment.utc(0).local().format()',
    'moment(moment(session_time)).format()', 'moment(session_time).daysInMonth()', 'moment(session_time).isDST()', 'moment("2016-07-01").isDST()',
    'moment(NaN).format()', 'moment(NaN).valueOf()', 'moment(NaN).add(1, "d").isValid()', 'moment(session_time).add(1, "d") > moment(session_time)',
    'moment(last_session_time).daysInMonth()', 'moment(session_time).format("dddd").length', 'moment(session_time).format("x") - session_unixtime * 1000']) {
    expr('moment: other', e);
  }
}

// Random combinations: format strings of several tokens, and chains of arithmetic, over
// the session times and zones above.
function momentCombinations(g) {
  const { r, expr } = g;
  const seps = ['-', '/', ' ', ':', 'T', '.', '', ', ', '[ at ]', '\\Y'];
  const tokens = FORMAT_TOKENS.filter((t) => !t.includes(' ') && !t.includes('['));
  for (let i = 0; i < 500; i++) {
    const n = r.int(2, 5);
    let fmt = '';
    for (let k = 0; k < n; k++) {
      fmt += (k ? r.pick(seps) : '') + r.pick(tokens);
    }
    expr('moment: format', `moment(session_time).format(${q(fmt)})`);
  }
  const units = ['years', 'months', 'weeks', 'days', 'hours', 'minutes', 'seconds', 'd', 'M', 'y', 'h', 'w', 'Q'];
  const ends = ['day', 'week', 'isoWeek', 'month', 'quarter', 'year', 'hour'];
  for (let i = 0; i < 300; i++) {
    let chain = 'moment(session_time)';
    for (let k = r.int(1, 3); k > 0; k--) {
      const amount = r.pick([1, -1, 2, 7, -13, 31, 0.5, 1.5, -2.5, 100]);
      chain += `.${r.pick(['add', 'subtract'])}(${amount}, ${q(r.pick(units))})`;
    }
    if (r.next() < 0.4) {
      chain += `.${r.pick(['startOf', 'endOf'])}(${q(r.pick(ends))})`;
    }
    expr('moment: add and subtract', `${chain}.format("YYYY-MM-DDTHH:mm:ss.SSSZ")`);
  }
}

function realWorld(g) {
  const { r, expr, add } = g;
  const exprs = ['session_date', 'session_date_compact', 'session_time', 'session_local_time', 'session_tz_offset', 'session_unixtime',
    'last_session_date', 'next_session_time', 'moment(session_time).add(-1, "days").format("YYYY-MM-DD")',
    'moment(session_time).subtract(1, "days").format("YYYYMMDD")', 'moment(session_time).format("YYYY/MM/DD/HH")',
    'moment(session_time).startOf("month").format("YYYY-MM-DD")', 'moment(session_time).endOf("month").format("YYYY-MM-DD")',
    'moment(session_time).add(-1, "month").startOf("month").format("YYYY-MM-DD")', 'moment(session_time).utc().format("YYYY-MM-DD HH:mm:ss")',
    'moment(session_time).format("X")', 'session_unixtime - 86400', '(session_unixtime / 3600) * 3600 + (24 * 3600)', 'Math.floor(session_unixtime / 86400)',
    'td.last_results.cnt > 0', 'td.last_results.cnt == 3', 'td.last_results.cnt * 1.1', 'JSON.parse(http.last_content).id',
    'JSON.parse(http.last_content).items.length', 'error.message.split(":")[0]', 'path.split("/").pop()', 'path.replace(/\\.csv$/, ".gz")',
    's3.last_object.key.split("/").slice(0, -1).join("/")', 'i + 1', 'i * 10', '"part-" + ("0000" + i).slice(-5)', 'task_name.split("+").pop()',
    'session_date.replace(/-/g, "")', 'session_date.substring(0, 7)', 'moment(session_date).format("MMM D, YYYY")', 'typeof maybe == "undefined" ? "none" : maybe',
    'cond == "fail" ? 1 : 0', 'val === "1"', 'parseInt(val) + 1', 'Number(val) * 2', 'String(i).length', 'range.to - range.from', 'counts.join(",")',
    'counts.length', 'JSON.stringify(counts)', 'user.company.name.toLowerCase()', 'name.toUpperCase() + "_" + session_date_compact',
    'table + "_" + moment(session_time).format("YYYYMM")', 'td.each.close - td.each.open', '(td.each.close / td.each.open * 100).toFixed(2)',
    'td.each.volume / 1000', 'td.each.high + td.each.low', 'moment.unix(td.each.time).utc().format()', 'ratio', 'ratio.toFixed(3)', 'big', 'tiny',
    'neg * 3', 'huge_int', 'half * 2 + 0.1', 'JSON.stringify(my_params)', 'my_params.b[0]', 'encodeURIComponent(url)', 'decodeURIComponent(encodeURIComponent(url))',
    'csv.split(",")', 'csv.split(",").length', 'words.split(" ").map(function(w){ return w[0].toUpperCase() + w.slice(1) }).join(" ")',
    'moment(session_time).week()', 'moment(session_time).isoWeek()', 'moment(session_time).day()', 'moment(session_time).quarter()',
    'moment(session_time).format("YYYY") + "Q" + moment(session_time).quarter()', 'moment(session_time).diff(moment(last_session_time), "hours")',
    'moment(next_session_time).diff(moment(session_time), "days")', 'moment(session_time).add(9, "hours").format("HH")',
    'moment(session_time).tz ? "tz" : "no tz"', 'new Date(session_unixtime * 1000).toISOString()', 'Math.round(td.last_results.ratio * 100)',
    '!!s3.last_object', '!!flag', 'empty || "default"', 'nothing || "fallback"', 'flag ? "y" : "n"', 'list.indexOf("a") >= 0',
    'mixed[1]', 'mixed["-1"]', 'JSON.stringify(mixed)', 'Object.keys(mixed).join(",")'];
  for (const e of exprs) {
    for (let k = 0; k < 4; k++) {
      expr('real-world expressions', e);
    }
  }
  const shapes = ['s3://bucket/${session_date_compact}/data.csv', 'SELECT * FROM t WHERE d = \'${session_date}\'', '${session_date} ${session_time}',
    'echo ${i} of ${counts.length}', '${td.database}.${table}_${session_date_compact}', 'cost: $$${td.each.close}', 'tmp_${task_name.replace(/[^a-z]/g, "_")}',
    '${moment(session_time).format("YYYY")}/${moment(session_time).format("MM")}', '${error.message}', 'retry=${i > 2}'];
  for (const s of shapes) {
    for (let k = 0; k < 6; k++) {
      add('real-world expressions', s);
    }
  }
  void r;
}

// Every case, in a stable order.
function generate(corpusDir) {
  const g = templates();
  numbers(g);
  objects(g);
  strings(g);
  templateRules(g);
  arrays(g);
  operators(g);
  dates(g);
  momentCases(g);
  momentCombinations(g);
  realWorld(g);
  for (const placeholder of corpusExpressions(corpusDir)) {
    for (const tz of ['UTC', 'Asia/Tokyo']) {
      g.add('corpus placeholders', placeholder, { tz, session_time: '2016-01-30T08:00:00Z' });
    }
  }
  return g.cases.map((c, id) => Object.assign({ id }, c));
}

module.exports = { generate };
