// check_hf.mjs encodes strings with Hugging Face's own tokenizers library,
// so that text/hf_test.go can compare package text against it. It is a
// maintainer check, not a dependency: see README.md in this folder.
//
//	node check_hf.mjs TOKENIZER_JSON STRINGS_JSONL [RESAVE_JSON]
//
// STRINGS_JSONL holds one JSON string per line. For each, one line of JSON
// is printed: {"ids":[...],"text":"..."}, the ids of Tokenizer.encode and
// the text of Tokenizer.decode of those ids. With RESAVE_JSON, the loaded
// tokenizer is also saved there (compact, as Tokenizer.save writes it), to
// compare with the file it was read from.
//
// The package "tokenizers" (the Node bindings, tokenizers@0.23.2) is found
// through NODE_PATH, for example NODE_PATH=/tmp/hf/node_modules after
// `npm install tokenizers@0.23.2` in /tmp/hf.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const require = createRequire(import.meta.url);
let Tokenizer;
try {
  ({ Tokenizer } = require('tokenizers'));
} catch (e) {
  console.error(`check_hf: cannot load the npm package "tokenizers" (set NODE_PATH to the node_modules folder it is installed in): ${e.message}`);
  process.exit(2);
}

const [tokPath, stringsPath, resave] = process.argv.slice(2);
if (!tokPath || !stringsPath) {
  console.error('usage: node check_hf.mjs TOKENIZER_JSON STRINGS_JSONL [RESAVE_JSON]');
  process.exit(2);
}
const tok = Tokenizer.fromFile(tokPath);
const lines = readFileSync(stringsPath, 'utf8').split('\n').filter((l) => l !== '');
const out = [];
for (const [i, line] of lines.entries()) {
  let s;
  try {
    s = JSON.parse(line);
  } catch (e) {
    console.error(`check_hf: ${stringsPath}:${i + 1}: not a JSON string: ${e.message}`);
    process.exit(2);
  }
  const enc = await tok.encode(s);
  const ids = enc.getIds();
  const text = await tok.decode(ids, false);
  out.push(JSON.stringify({ ids, text }));
}
process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
if (resave) {
  tok.save(resave, false);
}
