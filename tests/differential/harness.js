// The node side of the `${...}` differential test: evaluates templates the way Digdag's
// `digdag.js` does, with moment 2.21 loaded and the process zone (`TZ`) set to the workflow
// zone, as Digdag sets the JavaScript context's zone.
//
// Reads JSON lines `{"id", "now", "template", "params"}` on stdin (`now` in epoch
// milliseconds; `moment()`, `Date.now()` and `new Date()` read it), prints JSON lines
// `{"id", "ok": true, "value"}` or `{"id", "ok": false, "error"}`. `MOMENT` is the path of
// moment.js. Written for spade; the template rules are those of `grammar/expr.md` and Digdag's
// spec (section 2.2), not a copy of `digdag.js`.
'use strict';

const readline = require('readline');

const moment = require(process.env.MOMENT);
if (moment.version !== '2.21.0') {
  throw new Error(`moment ${moment.version} loaded, 2.21.0 expected`);
}
globalThis.moment = moment;

let now = 0;
const RealDate = Date;
// `Date` with an injected clock: `new Date()` and `Date.now()` read `now`, the rest is the real
// `Date`, whose prototype it shares (so `instanceof Date` holds for both).
function ClockDate(...args) {
  if (!new.target) {
    return new RealDate(now).toString();
  }
  return args.length === 0 ? new RealDate(now) : new RealDate(...args);
}
ClockDate.prototype = RealDate.prototype;
ClockDate.now = () => now;
ClockDate.parse = RealDate.parse;
ClockDate.UTC = RealDate.UTC;
globalThis.Date = ClockDate;

// Literal text is written as a JavaScript string literal; `$$` stands for `$`.
const literal = (text) => JSON.stringify(text.replace(/\$\$/g, '$'));

// The next `${` that opens a placeholder: one character at least must follow it, and
// `${word:` (an operator's reference such as `${secret:x}`) does not count.
function nextOpening(input, from) {
  for (let at = input.indexOf('${', from); at >= 0; at = input.indexOf('${', at + 1)) {
    if (at + 2 < input.length && !/^[a-z]+:/.test(input.slice(at + 2))) {
      return at;
    }
  }
  return -1;
}

// The function body that renders `input`: one `__p +=` statement concatenating the literal
// text and, per placeholder, `(__t=(SCRIPT))` rendered as null -> '', a string as it is,
// anything else through JSON.stringify. The script is pasted as source text, so what parses
// there is what Digdag accepts; `print(...)` appends to `__p` while the statement runs.
function compile(input) {
  let source = "__p+=''";
  let pos = 0;
  while (pos < input.length) {
    const open = nextOpening(input, pos);
    if (open < 0) {
      source += '+' + literal(input.slice(pos));
      break;
    }
    source += '+' + literal(input.slice(pos, open));
    let depth = 0;
    let close = -1;
    for (let i = open + 2; i < input.length; i++) {
      if (input[i] === '{') {
        depth++;
      } else if (input[i] === '}') {
        if (depth === 0) {
          close = i;
          break;
        }
        depth--;
      }
    }
    if (close < 0) {
      // Unclosed: the rest is literal text.
      source += '+' + literal(input.slice(open));
      break;
    }
    const script = input.slice(open + 2, close);
    if (script) {
      source += "+\n((__t=(" + script + "))==null?'':(typeof __t==\"string\"?__t:JSON.stringify(__t)))+\n''";
    }
    pos = close + 1;
  }
  return "with(this){\nvar __t,__p='',__j=Array.prototype.join,print=function(){__p+=__j.call(arguments,'');};\n" +
    source + ";\nreturn __p;\n}\n";
}

function template(input, params) {
  const render = new Function(compile(input));
  return render.call(JSON.parse(JSON.stringify(params)));
}
globalThis.template = template;

function evaluate(c) {
  now = c.now;
  try {
    const value = template(c.template, c.params || {});
    return { id: c.id, ok: true, value: value };
  } catch (e) {
    return { id: c.id, ok: false, error: String(e && e.message !== undefined ? `${e.name}: ${e.message}` : e) };
  }
}

const out = [];
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (line.trim()) {
    out.push(JSON.stringify(evaluate(JSON.parse(line))));
  }
});
rl.on('close', () => {
  process.stdout.write(out.join('\n') + '\n');
});
