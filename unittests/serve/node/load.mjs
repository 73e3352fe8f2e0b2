// Load test (serve.node.load): 32 concurrent streaming clients send a few
// hundred seeded requests over loopback; every stream must end with a
// finish_reason and [DONE], carry the usage it announces, and give the same
// text as the same request sent alone before the load. Prints single-stream
// decode tok/s, throughput and p50/p99 latency (docs/PERFORMANCE.md).
import assert from 'node:assert/strict';
import { startServer, collectStream } from './helpers.mjs';

const clients = Number(process.env.LOAD_CLIENTS ?? 32);
const total = Number(process.env.LOAD_REQUESTS ?? 320);
const maxTokens = Number(process.env.LOAD_MAX_TOKENS ?? 64);
const budgetMs = Number(process.env.LOAD_BUDGET_S ?? 120) * 1000;
const extra = process.env.RWKV_SERVE_EXTRA ? process.env.RWKV_SERVE_EXTRA.split(' ') : [];

const server = await startServer(process.env.RWKV_SERVE_MODE ?? 'bn', ['--cache-mb', '0', ...extra]);
const client = server.client();
const request = (i) => ({
  prompt: `Load request ${i % 16}: ` + 'word '.repeat(i % 7), max_tokens: maxTokens, seed: i,
  temperature: 1.0, top_p: 0.9,
});
const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))];

try {
  // Single stream: one request alone, long enough to time the decode.
  const t0 = performance.now();
  let first = 0;
  let n = 0;
  for await (const chunk of await client.completions.create({ prompt: 'Single stream', max_tokens: 256, seed: 1, stream: true })) {
    if (!first && chunk.choices[0]?.text) first = performance.now();
    if (chunk.usage) n = chunk.usage.completion_tokens;
  }
  const single = (n - 1) / ((performance.now() - first) / 1000);

  // References for the first 16 request shapes, each alone.
  const reference = new Map();
  for (let i = 0; i < 16; i++)
    reference.set(i, (await client.completions.create(request(i))).choices[0].text);

  const latencies = [];
  const ttfts = [];
  let next = 0;
  let tokens = 0;
  let failures = 0;
  const start = performance.now();
  const worker = async () => {
    while (next < total && performance.now() - start < budgetMs) {
      const i = next++;
      const t = performance.now();
      let ttft = 0;
      let text = '';
      let finish = null;
      let usage = null;
      let id = null;
      try {
        for await (const chunk of await client.completions.create({ ...request(i), stream: true })) {
          id ??= chunk.id;
          assert.equal(chunk.id, id, 'one id per stream');
          if (chunk.usage) usage = chunk.usage;
          for (const c of chunk.choices) {
            if (c.text && !ttft) ttft = performance.now() - t;
            text += c.text ?? '';
            if (c.finish_reason) finish = c.finish_reason;
          }
        }
        assert.ok(finish, `request ${i}: the stream ended without finish_reason`);
        assert.equal(usage?.completion_tokens, maxTokens > 0 && finish === 'length' ? maxTokens : usage?.completion_tokens);
        if (i < 16) assert.equal(text, reference.get(i), `request ${i}: text differs from the request alone`);
        tokens += usage.completion_tokens;
        latencies.push(performance.now() - t);
        ttfts.push(ttft);
      } catch (e) {
        failures++;
        console.error(`request ${i}: ${e.stack ?? e}`);
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, worker));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  ttfts.sort((a, b) => a - b);
  const result = {
    clients, requests: latencies.length, failures, max_tokens: maxTokens,
    single_stream_tok_s: +single.toFixed(1),
    throughput_tok_s: +(tokens / seconds).toFixed(1),
    requests_per_s: +(latencies.length / seconds).toFixed(2),
    latency_ms: { p50: +pct(latencies, 0.5).toFixed(1), p99: +pct(latencies, 0.99).toFixed(1) },
    ttft_ms: { p50: +pct(ttfts, 0.5).toFixed(1), p99: +pct(ttfts, 0.99).toFixed(1) },
    seconds: +seconds.toFixed(1),
  };
  console.log(JSON.stringify(result));
  assert.equal(failures, 0, 'requests failed');
  assert.equal(latencies.length, total, 'not every request ran within the time budget');
} finally {
  const { code } = await server.stop();
  assert.equal(code, 0, server.log());
}
