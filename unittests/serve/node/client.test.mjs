// rwkv-serve driven by the official `openai` npm client: completions and
// chat, streamed and not, usage, the state cache, errors, a client that
// disconnects, and graceful shutdown. Run by ctest (serve.node.client).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, metric, collectStream, loadOpenAI } from './helpers.mjs';

const lib = process.env.RWKV_SERVE_MODE ?? 'bn';

describe(`rwkv-serve (${lib})`, () => {
  let server, client;
  before(async () => {
    server = await startServer(lib, ['--max-tokens-limit', '512', '--max-prompt-tokens', '400', '--max-body-bytes', '65536']);
    client = server.client();
  });
  after(async () => {
    const { code } = await server.stop();
    assert.equal(code, 0, server.log());
  });

  it('lists the model', async () => {
    const models = await client.models.list();
    assert.equal(models.data.length, 1);
    assert.equal(models.data[0].object, 'model');
  });

  it('completes, streamed and not, with the same text for a seed', async () => {
    const req = { model: 'tiny', prompt: 'The quick brown fox', max_tokens: 24, seed: 11, temperature: 0.8 };
    const whole = await client.completions.create(req);
    assert.equal(whole.object, 'text_completion');
    assert.equal(whole.choices.length, 1);
    assert.equal(whole.choices[0].finish_reason, 'length');
    assert.equal(whole.usage.completion_tokens, 24);
    assert.ok(whole.usage.prompt_tokens > 0);
    assert.equal(whole.usage.total_tokens, whole.usage.prompt_tokens + 24);
    const streamed = await collectStream(await client.completions.create({ ...req, stream: true }));
    assert.equal(streamed.text, whole.choices[0].text);
    assert.equal(streamed.finish, 'length');
    assert.equal(streamed.usage.completion_tokens, 24);
  });

  it('chats, streamed and not', async () => {
    const req = {
      model: 'tiny', max_tokens: 20, seed: 5,
      messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Hello!' }],
    };
    const whole = await client.chat.completions.create(req);
    assert.equal(whole.object, 'chat.completion');
    assert.equal(whole.choices[0].message.role, 'assistant');
    assert.ok(['stop', 'length'].includes(whole.choices[0].finish_reason));
    assert.ok(!whole.choices[0].message.content.includes('\n\n'));
    const streamed = await collectStream(await client.chat.completions.create({
      ...req, stream: true, stream_options: { include_usage: true } }));
    assert.equal(streamed.text, whole.choices[0].message.content);
    assert.equal(streamed.usage.completion_tokens, whole.usage.completion_tokens);
    assert.equal(streamed.usage.prompt_tokens, whole.usage.prompt_tokens);
  });

  it('gives n choices with their own seeds', async () => {
    const r = await client.completions.create({ prompt: 'Once upon a time', max_tokens: 16, n: 3, seed: 1 });
    assert.equal(r.choices.length, 3);
    assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
    assert.equal(r.usage.completion_tokens, 48);
    assert.notEqual(r.choices[0].text, r.choices[1].text);
    const one = await client.completions.create({ prompt: 'Once upon a time', max_tokens: 16, seed: 2 });
    assert.equal(one.choices[0].text, r.choices[1].text);
  });

  it('cuts at a stop string', async () => {
    const free = await client.completions.create({ prompt: 'abc', max_tokens: 40, seed: 9, temperature: 0 });
    const text = free.choices[0].text;
    assert.ok(text.length > 4, text);
    const stop = text.slice(2, 4);
    const cut = await client.completions.create({ prompt: 'abc', max_tokens: 40, seed: 9, temperature: 0, stop: [stop] });
    assert.equal(cut.choices[0].finish_reason, 'stop');
    assert.equal(cut.choices[0].text, text.slice(0, text.indexOf(stop)));
  });

  it('reuses the state of a cached prompt prefix', async () => {
    // Prefixes match by tokens: a prefix ending in a newline stays a token
    // boundary when text is appended.
    const doc = 'A document that several requests share.\n'.repeat(4);
    const a = await client.completions.create({ prompt: doc, max_tokens: 8, seed: 3 });
    const again = await client.completions.create({ prompt: doc, max_tokens: 8, seed: 3 });
    assert.equal(again.usage.prompt_tokens_details.cached_tokens, a.usage.prompt_tokens);
    assert.equal(again.choices[0].text, a.choices[0].text);
    const ext = await client.completions.create({ prompt: doc + 'And a question?', max_tokens: 8, seed: 3 });
    assert.equal(ext.usage.prompt_tokens_details.cached_tokens, a.usage.prompt_tokens);
    // A chat that continues a conversation starts after its earlier turns.
    const turn1 = [{ role: 'system', content: 'Sys.' }, { role: 'user', content: 'One' }];
    const r1 = await client.chat.completions.create({ messages: turn1, max_tokens: 6, seed: 1 });
    const turn2 = [...turn1, { role: 'assistant', content: r1.choices[0].message.content || 'x' }, { role: 'user', content: 'Two' }];
    const r2 = await client.chat.completions.create({ messages: turn2, max_tokens: 6, seed: 1 });
    const cached = r2.usage.prompt_tokens_details.cached_tokens;
    assert.ok(cached > 0 && cached <= r1.usage.prompt_tokens, JSON.stringify([r1.usage, r2.usage]));
  });

  it('answers errors in the OpenAI format', async () => {
    const OpenAI = loadOpenAI();
    const expectError = async (promise, status, param) => {
      await assert.rejects(promise, (e) => {
        assert.ok(e instanceof OpenAI.APIError, String(e));
        assert.equal(e.status, status, e.message);
        if (param !== undefined) assert.equal(e.param, param);
        assert.ok(e.error?.message || e.message);
        return true;
      });
    };
    await expectError(client.completions.create({ prompt: 'x', max_tokens: 100000 }), 400, 'max_tokens');
    await expectError(client.completions.create({ prompt: 'x', temperature: 9 }), 400, 'temperature');
    await expectError(client.completions.create({ prompt: 'x', n: 99 }), 400, 'n');
    await expectError(client.completions.create({ prompt: 'x', logprobs: 2 }), 400, 'logprobs');
    await expectError(client.completions.create({ prompt: '' }), 400, 'prompt');
    await expectError(client.completions.create({ prompt: [1, 2, 100000] }), 400, 'prompt');
    await expectError(client.completions.create({ prompt: 'word '.repeat(600) }), 400, 'prompt');
    await expectError(client.chat.completions.create({ messages: [] }), 400, 'messages');
    await expectError(client.chat.completions.create({ messages: [{ role: 'robot', content: 'x' }] }), 400, 'messages[0].role');
    await expectError(client.completions.create({ prompt: 'x', state: '../etc/passwd' }), 400, 'state');
    await expectError(client.completions.create({ prompt: 'x', stream: true, max_tokens: 0 }), 400, 'max_tokens');
    // Below the client: bad JSON, a big body, an unknown route.
    const post = (path, body) => fetch(`${server.baseURL}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    for (const [res, status] of [
      [await post('/completions', '{"prompt": '), 400],
      [await post('/completions', '[1, 2]'), 400],
      [await post('/completions', JSON.stringify({ prompt: 'y'.repeat(70000) })), 413],
      [await post('/nothing', '{}'), 404],
    ]) {
      assert.equal(res.status, status);
      const body = await res.json();
      assert.equal(typeof body.error.message, 'string');
      assert.ok('type' in body.error && 'param' in body.error && 'code' in body.error);
    }
    assert.equal((await fetch(`http://127.0.0.1:${server.port}/health`)).status, 200);
  });

  it('frees the sequence of a client that disconnects', async () => {
    const controller = new AbortController();
    const stream = await client.completions.create(
      { prompt: 'Keep going', max_tokens: 500, stream: true, seed: 1 }, { signal: controller.signal });
    let seen = 0;
    try {
      // The client ends the iteration (or throws) once aborted.
      for await (const chunk of stream) {
        if (++seen === 3) controller.abort();
      }
    } catch (e) {
      assert.match(e.name, /Abort/);
    }
    assert.ok(seen >= 3 && seen < 100, `${seen} chunks`);
    const t0 = Date.now();
    while ((await metric(server, 'rwkv_active_sequences')) !== 0) {
      assert.ok(Date.now() - t0 < 10000, 'the sequence was not freed');
      await new Promise((r) => setTimeout(r, 50));
    }
    const generated = await metric(server, 'rwkv_generated_tokens_total');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await metric(server, 'rwkv_generated_tokens_total'), generated);
  });

  it('exports Prometheus metrics', async () => {
    const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
    for (const name of ['rwkv_requests_total', 'rwkv_generated_tokens_total', 'rwkv_batch_occupancy_bucket',
      'rwkv_request_duration_seconds_bucket', 'rwkv_time_to_first_token_seconds_count', 'rwkv_state_cache_bytes'])
      assert.ok(text.includes(name), name);
  });
});

describe('rwkv-serve limits and shutdown', () => {
  it('answers 429 when the queue is full', async () => {
    const server = await startServer(lib, ['--max-queue', '0']);
    try {
      await assert.rejects(server.client().completions.create({ prompt: 'x', max_tokens: 2 }),
        (e) => e.status === 429 && e.code === 'queue_full');
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  });

  it('finishes a request in flight on SIGTERM, then refuses new ones', async () => {
    const server = await startServer(lib, ['--shutdown-grace', '20']);
    const client = server.client();
    const stream = await client.completions.create({ prompt: 'Long', max_tokens: 400, stream: true, seed: 4 });
    const done = collectStream(stream);
    await new Promise((r) => setTimeout(r, 100));
    server.proc.kill('SIGTERM');
    const r = await done;
    assert.equal(r.finish, 'length');
    assert.equal(r.usage.completion_tokens, 400);
    const { code } = await server.exited;
    assert.equal(code, 0, server.log());
  });

  it('ends a request in flight with an error after the grace period', async () => {
    const server = await startServer(lib, ['--shutdown-grace', '0', '--max-tokens-limit', '100000']);
    const client = server.client();
    // End-of-text (token 0) is banned, so the completion cannot finish by
    // itself before the signal.
    const stream = await client.completions.create({ prompt: 'Long', max_tokens: 100000, stream: true, seed: 4, logit_bias: { 0: -100 } });
    const done = collectStream(stream).then(() => 'ended', (e) => e);
    await new Promise((r) => setTimeout(r, 100));
    server.proc.kill('SIGINT');
    const r = await done;
    assert.ok(r instanceof Error && /shutting down/.test(r.message), String(r));
    assert.equal((await server.exited).code, 0, server.log());
  });
});
