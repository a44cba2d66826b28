#!/usr/bin/env node
// The `${...}` differential test: evaluates the same templates in spade and in node with
// moment 2.21 (Digdag's version) and Digdag's template rules, then prints the match rate and
// the mismatches by category. Not part of `cargo test`; see tests/differential/README.md.
//
//   node tests/differential/run.js [--spade PATH] [--show N] [--only CATEGORY] [--report FILE]
//
// `--spade` is a built `expr-eval` example binary (default: build it with `$CARGO`, or
// `cargo`, in release mode). moment is installed with `npm install moment@2.21.0` into a
// temporary directory, removed at the end.
'use strict';

const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { generate } = require('./cases');

const ROOT = path.resolve(__dirname, '..', '..');

function parseArgs(argv) {
  const args = { show: 3, only: null, spade: null, report: null };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) {
        throw new Error(`${flag} needs a value`);
      }
      return argv[++i];
    };
    if (flag === '--show') {
      args.show = Number(value());
    } else if (flag === '--only') {
      args.only = value();
    } else if (flag === '--spade') {
      args.spade = value();
    } else if (flag === '--report') {
      args.report = value();
    } else {
      throw new Error(`unknown argument \`${flag}\``);
    }
  }
  return args;
}

function installMoment(dir) {
  execFileSync('npm', ['install', '--silent', '--no-audit', '--no-fund', '--prefix', dir, 'moment@2.21.0'], { stdio: 'inherit' });
  return path.join(dir, 'node_modules', 'moment');
}

function spadeBinary(given) {
  if (given) {
    return path.resolve(given);
  }
  const cargo = process.env.CARGO || 'cargo';
  execFileSync(cargo, ['build', '--release', '--example', 'expr-eval'], { cwd: ROOT, stdio: 'inherit' });
  return path.join(ROOT, 'target', 'release', 'examples', 'expr-eval');
}

const lines = (text) => text.split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));

function run(program, args, input, env) {
  const r = spawnSync(program, args, { input, env: Object.assign({}, process.env, env), maxBuffer: 1 << 30 });
  if (r.status !== 0) {
    throw new Error(`${program} exited with ${r.status}: ${r.stderr}`);
  }
  return lines(r.stdout.toString());
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  let cases = generate(path.join(ROOT, '..', 'shared', 'corpus', 'digdag'));
  if (args.only) {
    cases = cases.filter((c) => c.category.startsWith(args.only));
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'spade-differential-'));
  try {
    const momentPath = installMoment(tmp);
    const spade = spadeBinary(args.spade);
    const input = cases.map((c) => JSON.stringify(c)).join('\n') + '\n';
    const ours = new Map(run(spade, [], input, {}).map((r) => [r.id, r]));
    const theirs = new Map();
    const zones = [...new Set(cases.map((c) => c.tz))];
    for (const tz of zones) {
      const zoneCases = cases.filter((c) => c.tz === tz).map((c) => JSON.stringify({
        id: c.id,
        now: Date.parse(c.session_time),
        template: c.template,
        params: ours.get(c.id).params,
      }));
      for (const r of run('node', [path.join(__dirname, 'harness.js')], zoneCases.join('\n') + '\n', { TZ: tz, MOMENT: momentPath })) {
        theirs.set(r.id, r);
      }
    }
    report(cases, ours, theirs, args);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// Mismatches whose cause is known and left alone on purpose, with the reason (README.md in
// this directory and grammar/expr.md explain them).
const KNOWN = [
  [/Number\("0b/, 'ES2015 binary numbers: node reads them, ES5 (Digdag, spade) does not'],
  [/JSON\.parse\("1e400"\)/, 'JSON numbers beyond the double range are refused (serde_json)'],
  [/fromCharCode\((55357|0xD800|0xDC00)/, 'lone UTF-16 surrogates: spade strings hold Unicode scalar values'],
  [/\.match\(.*\)\.index/, 'match results have no `index`/`input` properties'],
  [/split\(\/\^\/m\)/, 'multiline `^` between CR and LF (the regex crate reads CRLF as one line end)'],
  [/^\$\{x;\}$|^\$\{var /, 'statements in `${...}`: spade runs them, digdag.js cannot parse them'],
  [/Date\.parse\("2016-02-30"\)/, 'V8 reads day overflow in Date.parse; ES5 (and spade) give NaN'],
  [/\.tz \?/, '`.tz` is spade\'s moment-timezone extension'],
  [/add\(-367, "y"\)/, 'local mean time before 1883: the bundled tz database has no such offsets'],
  [/moment(\.utc)?\("(March 13, 2016|2016\/03\/13|2016-3-1|2016-03-13 10:00:00 \+0900)"\)/, 'non-ISO strings moment hands to the engine\'s own Date parser (V8 forms)'],
  [/localeCompare/, 'collation: node uses ICU, spade an approximation'],
];

const knownReason = (template) => {
  const hit = KNOWN.find(([re]) => re.test(template));
  return hit ? hit[1] : null;
};

// Both succeed with the same text, or both fail (the messages of two engines never agree).
function verdict(ours, theirs) {
  if (ours.ok && theirs.ok) {
    return ours.value === theirs.value ? null : 'different value';
  }
  if (!ours.ok && !theirs.ok) {
    return null;
  }
  return ours.ok ? 'spade succeeds, node fails' : 'spade fails, node succeeds';
}

function report(cases, ours, theirs, args) {
  const byCategory = new Map();
  const mismatches = [];
  for (const c of cases) {
    const o = ours.get(c.id);
    const t = theirs.get(c.id);
    const stat = byCategory.get(c.category) || { total: 0, matched: 0 };
    stat.total++;
    const why = verdict(o, t);
    if (why === null) {
      stat.matched++;
    } else {
      mismatches.push({ c, o, t, why });
    }
    byCategory.set(c.category, stat);
  }
  const matched = cases.length - mismatches.length;
  const pct = (a, b) => (100 * a / b).toFixed(1) + '%';
  console.log(`\n${matched} of ${cases.length} templates match (${pct(matched, cases.length)})\n`);
  const known = new Map();
  for (const m of mismatches) {
    const reason = knownReason(m.c.template);
    if (reason) {
      known.set(reason, (known.get(reason) || 0) + 1);
    }
  }
  const unexplained = mismatches.length - [...known.values()].reduce((a, b) => a + b, 0);
  console.log(`${mismatches.length} mismatches: ${mismatches.length - unexplained} known, ${unexplained} not explained`);
  for (const [reason, n] of known) {
    console.log(`  ${String(n).padStart(4)}  ${reason}`);
  }
  console.log();
  const width = Math.max(...[...byCategory.keys()].map((k) => k.length));
  for (const [category, s] of [...byCategory].sort()) {
    console.log(`  ${category.padEnd(width)}  ${String(s.matched).padStart(5)} / ${String(s.total).padStart(5)}  ${pct(s.matched, s.total)}`);
  }
  if (args.show > 0 && mismatches.length > 0) {
    console.log('\nMismatches, by category:');
    const shown = new Map();
    for (const m of mismatches) {
      const n = shown.get(m.c.category) || 0;
      shown.set(m.c.category, n + 1);
      if (n >= args.show) {
        continue;
      }
      if (knownReason(m.c.template)) {
        continue;
      }
      const show = (r) => (r.ok ? JSON.stringify(r.value) : `error: ${r.error}`);
      console.log(`\n  [${m.c.category}] ${m.why}, ${m.c.tz} at ${m.c.session_time}\n    ${m.c.template}\n    spade: ${show(m.o)}\n    node:  ${show(m.t)}`);
    }
  }
  if (args.report) {
    fs.writeFileSync(args.report, mismatches.map((m) => JSON.stringify({
      category: m.c.category, why: m.why, tz: m.c.tz, session_time: m.c.session_time, template: m.c.template, spade: m.o, node: m.t,
    }, (k, v) => (k === 'params' ? undefined : v))).join('\n') + '\n');
  }
}

main();
