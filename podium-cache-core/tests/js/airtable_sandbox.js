// A stand-in for Airtable's "Run a script" automation sandbox, used by
// podium-cache-core/tests/automation_scripts.rs to run the generated scripts for real.
//
// Usage: node airtable_sandbox.js < scenario.json
//
// scenario = {
//   "script": "/path/to/x_automation.js",
//   "mode": "run" | "selftest",
//   "recordId": "rec…" | null,               // null: input.config() has no recordId
//   "tables": [{ "name": "Events",
//                "fields": [{ "name": "slug", "type": "singleLineText" }, …],
//                "records": [{ "id": "rec…", "name": "…", "cells": { "slug": "x", … } }] }],
//   "subtle": true,                           // expose crypto.subtle to the script
//   "tamper": false                           // flip one byte of each request body after signing
// }
//
// The script runs in a fresh V8 context (node:vm) that holds only what Airtable provides:
// input, base, output, console, fetch and (when "subtle") crypto.subtle, besides the language's
// own built-ins. Node's setTimeout, Buffer, process, require, TextEncoder and crypto are absent.
//
// Prints one JSON line: { ok, error, logs, output, elapsedMs, absentGlobals, selftest }.
'use strict';

const vm = require('node:vm');
const fs = require('node:fs');
const nodeCrypto = require('node:crypto');

const FORBIDDEN = ['setTimeout', 'setInterval', 'setImmediate', 'Buffer', 'process', 'require', 'TextEncoder', 'TextDecoder', 'crypto', 'module'];

function makeRecord(table, raw, loaded) {
  return {
    id: raw.id,
    name: raw.name || raw.id,
    getCellValue(fieldName) {
      if (!table.fields.some((f) => f.name === fieldName)) {
        throw new Error('No field named "' + fieldName + '" in table "' + table.name + '"');
      }
      if (loaded && !loaded.includes(fieldName)) {
        throw new Error('Field "' + fieldName + '" was not loaded (pass it in the fields option)');
      }
      const value = raw.cells[fieldName];
      return value === undefined ? null : JSON.parse(JSON.stringify(value));
    },
  };
}

function makeTable(spec) {
  const table = {
    name: spec.name,
    fields: spec.fields.map((f, i) => ({ id: 'fld' + i, name: f.name, type: f.type })),
    getField(name) {
      const field = this.fields.find((f) => f.name === name);
      if (!field) throw new Error('No field named "' + name + '" in table "' + spec.name + '"');
      return field;
    },
    async selectRecordsAsync(options) {
      const loaded = options && options.fields ? options.fields : null;
      if (loaded) loaded.forEach((name) => table.getField(name));
      return { records: spec.records.map((r) => makeRecord(table, r, loaded)) };
    },
    async selectRecordAsync(id, options) {
      const loaded = options && options.fields ? options.fields : null;
      if (loaded) loaded.forEach((name) => table.getField(name));
      const raw = spec.records.find((r) => r.id === id);
      return raw ? makeRecord(table, raw, loaded) : null;
    },
  };
  return table;
}

async function main() {
  const scenario = JSON.parse(fs.readFileSync(0, 'utf8'));
  const source = fs.readFileSync(scenario.script, 'utf8');
  const logs = [];
  const output = {};
  const tables = (scenario.tables || []).map(makeTable);

  const sandbox = {
    input: {
      config() {
        return scenario.recordId === null ? {} : { recordId: scenario.recordId };
      },
    },
    base: {
      getTable(name) {
        const table = tables.find((t) => t.name === name);
        if (!table) throw new Error('No table named "' + name + '" in this base');
        return table;
      },
    },
    output: {
      set(key, value) {
        output[key] = value;
      },
    },
    console: {
      log: (...args) => logs.push(args.map(String).join(' ')),
    },
    fetch: async (url, init) => {
      if (scenario.tamper && init && typeof init.body === 'string') {
        const bytes = Buffer.from(init.body, 'utf8');
        bytes[Math.floor(bytes.length / 2)] ^= 0x01;
        init = Object.assign({}, init, { body: bytes });
      }
      return fetch(url, init);
    },
  };
  if (scenario.subtle) sandbox.crypto = { subtle: nodeCrypto.webcrypto.subtle };
  const context = vm.createContext(sandbox);

  const absentGlobals = vm.runInContext(
    JSON.stringify(FORBIDDEN.filter((n) => n !== 'crypto' || !scenario.subtle)) +
      '.filter((name) => typeof globalThis[name] === "undefined")',
    context
  );

  const started = Date.now();
  const result = { ok: false, error: null, logs, output, elapsedMs: 0, absentGlobals, selftest: null };
  try {
    if (scenario.mode === 'selftest') {
      result.selftest = selftest(source, context);
    } else {
      const wrapped = '(async () => {\n' + source + '\n})()';
      await new vm.Script(wrapped, { filename: scenario.script }).runInContext(context);
    }
    result.ok = true;
  } catch (err) {
    result.error = err && err.message ? err.message : String(err);
  }
  result.elapsedMs = Date.now() - started;
  process.stdout.write(JSON.stringify(result) + '\n');
}

// Checks the script's own UTF-8, base64, SHA-256 and HMAC against Node's (an independent
// implementation): the helpers are the part of the script before "// ---- Configuration ----".
function selftest(source, context) {
  const marker = '// ---- Configuration ----';
  const at = source.indexOf(marker);
  if (at < 0) throw new Error('marker "' + marker + '" not found in the script');
  const helpers = vm.runInContext(
    '(() => {\n' + source.slice(0, at) +
      '\nreturn { utf8Encode, base64Encode, base64Decode, sha256, hmacSha256 };\n})()',
    context
  );
  const hex = (bytes) => Buffer.from(bytes).toString('hex');
  let checked = 0;
  const check = (label, actual, expected) => {
    checked++;
    if (actual !== expected) throw new Error(label + ': script gave ' + actual + ', Node gives ' + expected);
  };
  const rng = nodeCrypto.createHash('sha256').update('seed').digest();
  const bytesOf = (n, salt) => {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = (rng[(i + salt) % 32] * (i + 7) + salt) & 255;
    return out;
  };
  for (let n = 0; n <= 200; n++) {
    const data = bytesOf(n, n);
    check('sha256 of ' + n + ' bytes', hex(helpers.sha256(new Uint8Array(data))),
      nodeCrypto.createHash('sha256').update(data).digest('hex'));
    check('base64 of ' + n + ' bytes', helpers.base64Encode(new Uint8Array(data)), data.toString('base64'));
    check('base64 round trip of ' + n + ' bytes', hex(helpers.base64Decode(data.toString('base64'))), data.toString('hex'));
  }
  for (const keyLength of [0, 1, 32, 63, 64, 65, 100, 200]) {
    for (const n of [0, 1, 55, 56, 64, 119, 120, 1000]) {
      const key = bytesOf(keyLength, 3);
      const data = bytesOf(n, 5);
      check('hmac key ' + keyLength + ' msg ' + n, hex(helpers.hmacSha256(new Uint8Array(key), new Uint8Array(data))),
        nodeCrypto.createHmac('sha256', key).update(data).digest('hex'));
    }
  }
  const texts = ['', 'plain ascii', 'é ü ß', '日本語', 'emoji 🎉 and 👩‍💻', 'lone \ud800 high', 'lone \udc00 low', 'end \ud83d', '\u2028\u2029', '\u0000\u007f\u0080\u07ff\u0800\uffff'];
  for (const text of texts) {
    check('utf8 of ' + JSON.stringify(text), hex(helpers.utf8Encode(text)), Buffer.from(text, 'utf8').toString('hex'));
  }
  check('invalid base64 is refused', helpers.base64Decode('ab$d'), null);
  return { checked };
}

main().catch((err) => {
  process.stderr.write('harness failure: ' + (err && err.stack ? err.stack : err) + '\n');
  process.exit(2);
});
