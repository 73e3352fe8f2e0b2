// Shared by the rwkv-serve client tests: starts a server on a free port
// (--port 0 --port-file) and loads the `openai` package that the
// serve.npm-install fixture put under the build tree.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (see unittests/serve/CMakeLists.txt)`);
  return v;
};

export function loadOpenAI() {
  const mod = createRequire(path.join(env('RWKV_NPM_DIR'), 'node_modules', '/'))('openai');
  return mod.default ?? mod;
}

export const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rwkv-serve-'));

// The tiny model has 512 tokens: the first 511 lines of the World vocabulary.
export function vocab() {
  const file = path.join(workDir, 'vocab511.txt');
  if (!fs.existsSync(file)) {
    const lines = fs.readFileSync(env('RWKV_WORLD_VOCAB'), 'utf8').split('\n');
    fs.writeFileSync(file, lines.slice(0, 511).join('\n') + '\n');
  }
  return file;
}

// lib: 'b1' (batch-1 library) or 'bn' (the --batch N one, with the batch-1
// library for chunked prefill unless extra has '--no-prefill').
export async function startServer(lib = 'bn', extra = []) {
  const portFile = path.join(workDir, `port-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const args = [];
  let noPrefill = extra.includes('--no-prefill');
  extra = extra.filter((a) => a !== '--no-prefill');
  if (lib === 'b1') args.push(env('RWKV_SERVE_LIB_B1'));
  else {
    args.push(env('RWKV_SERVE_LIB_BN'));
    if (!noPrefill) args.push('--prefill-library', env('RWKV_SERVE_LIB_B1'));
  }
  args.push('--weights', env('RWKV_SERVE_WEIGHTS'), '--vocab', vocab(),
    '--port', '0', '--port-file', portFile, '--threads', '1', ...extra);
  const proc = spawn(env('RWKV_SERVE'), args, { stdio: ['ignore', 'inherit', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const t0 = Date.now();
  while (!fs.existsSync(portFile)) {
    if (proc.exitCode !== null) throw new Error(`rwkv-serve exited: ${log}`);
    if (Date.now() - t0 > 30000) { proc.kill('SIGKILL'); throw new Error(`rwkv-serve did not start: ${log}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  const port = Number(fs.readFileSync(portFile, 'utf8').trim());
  const baseURL = `http://127.0.0.1:${port}/v1`;
  return {
    port, baseURL, proc, exited, log: () => log,
    client(opts = {}) {
      const OpenAI = loadOpenAI();
      return new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60000, ...opts });
    },
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

export async function metric(server, name) {
  const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line ? Number(line.split(' ').pop()) : undefined;
}

export async function collectStream(stream) {
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta ? (c.delta.content ?? '') : (c.text ?? '');
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish, usage, chunks };
}
