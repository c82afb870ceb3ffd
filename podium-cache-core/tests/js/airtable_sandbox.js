// A stand-in for Airtable's "Run a script" automation sandbox, used by
// podium-cache-core/tests/automation_scripts.rs to run the generated scripts for real.
//
// Usage: node airtable_sandbox.js < scenario.json
//
// scenario = {
//   "script": "/path/to/x_automation.js",
//   "mode": "run" | "selftest",
//   "recordId": "rec…" | null,               // null: input.config() has no recordId
//   "inputs": { "webhookUrl": "http://…" },   // more input variables (input.config())
//   "secrets": { "podium_webhook_secret": "whsec_…" } | null,  // input.secret(); null: no input.secret
//   "tables": [{ "name": "Events",
//                "fields": [{ "name": "slug", "type": "singleLineText" },
//                           { "name": "owners", "type": "multipleLookupValues", "result": "singleCollaborator" }, …],
//                "records": [{ "id": "rec…", "name": "…", "cells": { "slug": "x", … } }] }],
//   "subtle": true,                           // expose crypto.subtle to the script
//   "tamper": false,                          // flip one byte of each request body after signing
//   "clock": "virtual",                       // Date.now() is a virtual clock (see below)
//   "appDown": { "kind": "refused" | "status" | "hang", "status": 503 }  // every fetch fails so
// }
//
// Cells are written in the shapes of Airtable's REST API (what the app's models read:
// https://airtable.com/developers/web/api/field-model); getCellValue hands them to the script in
// the scripting API's own shapes, by field type
// (https://airtable.com/developers/scripting/api/cell_values, and for a checkbox
// https://airtable.com/developers/extensions/api/FieldType: `true` or `null`), so the script
// must convert them back.
//
// The script runs in a fresh V8 context (node:vm) that holds only what Airtable provides:
// input, base, output, console, fetch and (when "subtle") crypto.subtle, besides the language's
// own built-ins. Node's setTimeout, Buffer, process, require, TextEncoder and crypto are absent.
//
// With "clock": "virtual" the script's Date.now() starts at the real time and advances 1 ms per
// call (so a busy-wait moves it), and a failing fetch of "appDown" advances it by what the
// failure costs in Airtable: a refused connection 2 ms, a 5xx answer 150 ms, a request that gets
// no answer 12 s (Airtable fails it then:
// https://coda.io/@kuovonne/kuovonnes-guided-to-scripting-in-airtable/automation-script-limits-54).
// The script's own total time on that clock is reported as virtualElapsedMs.
//
// Prints one JSON line: { ok, error, logs, output, elapsedMs, virtualElapsedMs, absentGlobals, selftest }.
'use strict';

const vm = require('node:vm');
const fs = require('node:fs');
const nodeCrypto = require('node:crypto');

const FORBIDDEN = ['setTimeout', 'setInterval', 'setImmediate', 'Buffer', 'process', 'require', 'TextEncoder', 'TextDecoder', 'crypto', 'module'];

// ---- The scripting API's cell shapes, from the REST API's ----

function hashText(text) {
  return nodeCrypto.createHash('sha256').update(String(text)).digest('hex').slice(0, 14);
}

function choice(name) {
  return { id: 'sel' + hashText(name), name, color: 'blueLight2' };
}

function collaborator(c) {
  return { id: c.id, email: c.email, name: c.name, profilePicUrl: 'https://dl.airtable.com/.profilePics/' + c.id };
}

function link(id) {
  return { id, name: 'Name of ' + id };
}

// One REST cell of a field of `type` as getCellValue returns it.
function scriptingShape(field, cell) {
  if (cell === undefined || cell === null) return null;
  const copy = JSON.parse(JSON.stringify(cell));
  switch (field.type) {
    case 'multipleRecordLinks':
      return copy.map(link);
    case 'singleSelect':
      return choice(copy);
    case 'multipleSelects':
      return copy.map(choice);
    case 'singleCollaborator':
    case 'createdBy':
    case 'lastModifiedBy':
      return collaborator(copy);
    case 'multipleCollaborators':
      return copy.map(collaborator);
    case 'multipleLookupValues':
      // [{linkedRecordId, value}]: one entry per looked-up value, each in its own field's shape.
      return copy.map((value, i) => ({
        linkedRecordId: 'recLinked' + String(i).padStart(8, '0'),
        value: field.result === 'multipleRecordLinks' ? link(value)
          : field.result ? scriptingShape({ type: field.result }, value) : value,
      }));
    case 'checkbox':
      return copy === true ? true : null;
    default:
      return copy;
  }
}

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
      const field = table.fields.find((f) => f.name === fieldName);
      return scriptingShape(field, raw.cells[fieldName]);
    },
  };
}

function makeTable(spec) {
  const table = {
    name: spec.name,
    fields: spec.fields.map((f, i) => ({ id: 'fld' + i, name: f.name, type: f.type, result: f.result })),
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

  const realNow = Date.now;
  let virtual = null;
  if (scenario.clock === 'virtual') {
    virtual = { at: realNow() };
  }
  const advance = (ms) => {
    if (virtual) virtual.at += ms;
  };
  const inputs = Object.assign({}, scenario.inputs || {});
  if (scenario.recordId !== null && scenario.recordId !== undefined) inputs.recordId = scenario.recordId;
  const input = {
    config() {
      return JSON.parse(JSON.stringify(inputs));
    },
  };
  if (scenario.secrets) {
    input.secret = (name) => {
      if (!Object.prototype.hasOwnProperty.call(scenario.secrets, name)) {
        throw new Error('No secret named "' + name + '" was added to this action');
      }
      return scenario.secrets[name];
    };
  }
  const fetched = [];
  const sandbox = {
    input,
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
      fetched.push(virtual ? virtual.at : realNow());
      const down = scenario.appDown;
      if (down) {
        if (down.kind === 'refused') {
          advance(2);
          const err = new TypeError('fetch failed');
          err.cause = { code: 'ECONNREFUSED' };
          throw err;
        }
        if (down.kind === 'hang') {
          advance(12000);
          throw new TypeError('the request to ' + url + ' got no answer within 12 s');
        }
        advance(150);
        return new Response('{"error":"unavailable"}', { status: down.status || 503 });
      }
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
  if (virtual) {
    const contextDate = vm.runInContext('Date', context);
    contextDate.now = () => {
      virtual.at += 1;
      return virtual.at;
    };
  }

  const absentGlobals = vm.runInContext(
    JSON.stringify(FORBIDDEN.filter((n) => n !== 'crypto' || !scenario.subtle)) +
      '.filter((name) => typeof globalThis[name] === "undefined")',
    context
  );

  const started = realNow();
  const virtualStart = virtual ? virtual.at : 0;
  const result = {
    ok: false, error: null, logs, output, elapsedMs: 0, virtualElapsedMs: null, fetchedAt: fetched,
    absentGlobals, selftest: null,
  };
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
  result.elapsedMs = realNow() - started;
  if (virtual) {
    result.virtualElapsedMs = virtual.at - virtualStart;
    result.fetchedAt = fetched.map((at) => at - virtualStart);
  }
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
