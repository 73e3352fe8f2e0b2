// A seeded request gives the same text alone and among 16 concurrent ones on
// the same server: every sequence has its own sampler and random generator,
// and a row of a batched step depends only on its own tokens.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, collectStream } from './helpers.mjs';

const lib = process.env.RWKV_SERVE_MODE ?? 'bn';
const extra = process.env.RWKV_SERVE_EXTRA ? process.env.RWKV_SERVE_EXTRA.split(' ') : [];

describe(`determinism (${lib} ${extra.join(' ')})`, () => {
  let server, client;
  before(async () => {
    // No state cache: the prompt is prefilled every time.
    server = await startServer(lib, ['--cache-mb', '0', ...extra]);
    client = server.client();
  });
  after(async () => assert.equal((await server.stop()).code, 0, server.log()));

  it('alone vs among 16 concurrent requests', async () => {
    const target = { prompt: 'In a quiet village by the sea', max_tokens: 48, seed: 1234, temperature: 1.0, top_p: 0.9 };
    const chatTarget = { messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 32, seed: 77 };
    const alone = (await client.completions.create(target)).choices[0].text;
    const chatAlone = (await client.chat.completions.create(chatTarget)).choices[0].message.content;
    // Others with other prompts, lengths and seeds, streamed and not, start
    // at different times so the target's batch changes as it decodes.
    const others = [];
    for (let i = 0; i < 14; i++) {
      const req = { prompt: `Request ${i}: ` + 'filler '.repeat(i * 3), max_tokens: 8 + 5 * i, seed: i, presence_penalty: 0.5 };
      others.push(i % 2 ? client.completions.create(req)
        : client.completions.create({ ...req, stream: true }).then(collectStream));
    }
    const again = client.completions.create({ ...target, stream: true }).then(collectStream);
    const chatAgain = client.chat.completions.create(chatTarget);
    await Promise.all(others);
    assert.equal((await again).text, alone);
    assert.equal((await chatAgain).choices[0].message.content, chatAlone);
  });
});
